package tlsalpn01

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/asn1"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

func TestSNI(t *testing.T) {
	tests := []struct {
		id   acme.Identifier
		want string
	}{
		{acme.Identifier{Type: "dns", Value: "A.Test."}, "a.test"},
		{acme.Identifier{Type: "ip", Value: "127.0.0.1"}, "1.0.0.127.in-addr.arpa"},
		{acme.Identifier{Type: "ip", Value: "::1"}, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"},
	}
	for _, tt := range tests {
		if got := SNI(tt.id); got != tt.want {
			t.Errorf("SNI(%v) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

// TestHandshake runs a real TLS handshake as a validator would and checks
// the acmeIdentifier extension carries the key authorization's digest.
func TestHandshake(t *testing.T) {
	var s Solver
	srv, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	chal := acme.Challenge{Type: "tls-alpn-01", Token: "tok", KeyAuthorization: "tok.thumb",
		Identifier: acme.Identifier{Type: "dns", Value: "a.test"}}
	if err := s.Present(t.Context(), chal); err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&netDialer, "tcp", srv.Addr().String(), &tls.Config{
		ServerName: "a.test", NextProtos: []string{Protocol}, InsecureSkipVerify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	state := conn.ConnectionState()
	conn.Close()
	if state.NegotiatedProtocol != Protocol {
		t.Errorf("negotiated %q, want %q", state.NegotiatedProtocol, Protocol)
	}
	leaf := state.PeerCertificates[0]
	want := sha256.Sum256([]byte("tok.thumb"))
	found := false
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}) {
			var got []byte
			if _, err := asn1.Unmarshal(ext.Value, &got); err != nil {
				t.Fatal(err)
			}
			found = bytes.Equal(got, want[:]) && ext.Critical
		}
	}
	if !found {
		t.Error("challenge certificate lacks a critical acmeIdentifier extension with the digest")
	}
	select {
	case <-s.Answered(chal):
	case <-time.After(time.Second):
		t.Error("Answered not closed after the handshake")
	}
	// Unknown names fail the handshake.
	if _, err := tls.DialWithDialer(&netDialer, "tcp", srv.Addr().String(), &tls.Config{
		ServerName: "other.test", NextProtos: []string{Protocol}, InsecureSkipVerify: true,
	}); err == nil {
		t.Error("handshake for a name with no challenge succeeded")
	}
	if err := s.CleanUp(t.Context(), chal); err != nil {
		t.Fatal(err)
	}
	if s.Answered(chal) != nil {
		t.Error("challenge still present after CleanUp")
	}
}

func TestIsChallenge(t *testing.T) {
	if !IsChallenge(&tls.ClientHelloInfo{SupportedProtos: []string{"acme-tls/1"}}) {
		t.Error("acme-tls/1 hello not recognised")
	}
	if IsChallenge(&tls.ClientHelloInfo{SupportedProtos: []string{"h2", "http/1.1"}}) {
		t.Error("ordinary hello taken for a challenge")
	}
}

var netDialer = net.Dialer{Timeout: 5 * time.Second}

// TestChallengeOnly: only a hello offering acme-tls/1 reaches get.
func TestChallengeOnly(t *testing.T) {
	want := &tls.Certificate{}
	cfg := ChallengeOnly(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return want, nil })
	for _, tt := range []struct {
		name   string
		protos []string
		ok     bool
	}{
		{"challenge", []string{Protocol}, true},
		{"browser", []string{"h2", "http/1.1"}, false},
		{"no ALPN", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test", SupportedProtos: tt.protos})
			if tt.ok && (err != nil || got != want) {
				t.Errorf("GetCertificate(%q) = %v, %v; want get's certificate", tt.protos, got, err)
			}
			if !tt.ok && !errors.Is(err, ErrNotChallenge) {
				t.Errorf("GetCertificate(%q) = %v, %v; want ErrNotChallenge", tt.protos, got, err)
			}
		})
	}
}
