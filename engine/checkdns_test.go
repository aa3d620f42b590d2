package engine

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/solver/dns01/rfc2136"
)

// TestCheckDNS: at start, a wildcard zone whose DNS server refuses the key
// is a *SettingError of Wildcards naming the zone; a DNS server that does
// not answer is a warning only (it may come up later); the right key
// passes; without dns-01 nothing is asked.
func TestCheckDNS(t *testing.T) {
	n := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	settings := func(server, secret string) *Settings {
		return &Settings{Wildcards: []string{"*.a.test"}, DNS01: &dns01.Solver{
			Provider: &rfc2136.Provider{Server: server, KeyName: n.KeyName(), Algorithm: n.Algorithm(), Secret: secret},
			Resolver: dns01.Resolver{Zones: []string{"a.test"}}}}
	}
	var logs testsvc.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	if err := settings(n.Addr(), n.Secret()).CheckDNS(t.Context(), logger); err != nil {
		t.Errorf("the zone's key: %v", err)
	}
	err = settings(n.Addr(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").CheckDNS(t.Context(), logger)
	var se *SettingError
	if !errors.As(err, &se) || se.Field != "Wildcards" || se.Value != "*.a.test" || !strings.Contains(err.Error(), "BADSIG") {
		t.Errorf("a wrong secret: %v, want a SettingError of Wildcards *.a.test saying BADSIG", err)
	}
	if err := settings(closed, n.Secret()).CheckDNS(t.Context(), logger); err != nil {
		t.Errorf("a DNS server that does not answer: %v, want only a warning", err)
	}
	if !strings.Contains(logs.String(), "the DNS provider gave no answer at start") || !strings.Contains(logs.String(), "*.a.test") {
		t.Errorf("no warning naming the wildcard:\n%s", logs.String())
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond) // the caller's bound ends first
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	if err := settings(n.Addr(), n.Secret()).CheckDNS(ctx, logger); err != nil {
		t.Errorf("the caller's deadline: %v, want only a warning", err)
	}
	if err := (&Settings{Wildcards: []string{"*.a.test"}}).CheckDNS(t.Context(), logger); err != nil {
		t.Errorf("without dns-01: %v", err)
	}
}
