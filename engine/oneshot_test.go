package engine

import (
	"errors"
	"net"
	"testing"

	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver/dns01"
)

func TestOneShotListen(t *testing.T) {
	iss := &acmeca.Issuer{}
	stop, err := OneShot{Challenge: acmeca.HTTP01, HTTPAddr: "127.0.0.1:0"}.Listen(iss)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if iss.Solvers[acmeca.HTTP01] == nil || len(iss.Solvers) != 1 {
		t.Errorf("http-01 solvers = %v", iss.Solvers)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var lerr *ListenError
	if _, err := (OneShot{Challenge: acmeca.TLSALPN01, TLSALPNAddr: busy.Addr().String()}).Listen(iss); !errors.As(err, &lerr) || lerr.Challenge != acmeca.TLSALPN01 {
		t.Errorf("Listen on a busy port = %v, want a *ListenError", err)
	}
	if _, err := (OneShot{Challenge: acmeca.DNS01}).Listen(iss); err == nil {
		t.Error("dns-01 without a DNS01 solver: no error")
	}
	if _, err := (OneShot{Challenge: "dns-02"}).Listen(iss); err == nil {
		t.Error("unknown challenge: no error")
	}
	stop, err = OneShot{Challenge: acmeca.DNS01, DNS01: &dns01.Solver{}}.Listen(iss)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if iss.Solvers[acmeca.DNS01] == nil || iss.Solvers[acmeca.DNSPersist01] == nil {
		t.Errorf("dns-01 solvers = %v, want dns-01 and dns-persist-01", iss.Solvers)
	}
}
