package acmeca

import (
	"strings"
	"testing"

	"github.com/mholt/acmez/v3/acme"
)

// TestValidationAdvice: the common validation failures, as Pebble and
// Let's Encrypt word them, say what to check (the port the CA says it
// connected to, else the challenge's); others add nothing.
func TestValidationAdvice(t *testing.T) {
	for _, tt := range []struct {
		challenge, typ, detail string
		want                   string // in Error(); "" for no advice
	}{
		{HTTP01, "connection", `Get "http://m2.test:5002/.well-known/acme-challenge/x": dial tcp 127.0.0.1:5002: connect: connection refused`, "could not connect to a.test on port 5002"},
		{HTTP01, "connection", "192.0.2.7: Fetching http://a.test/.well-known/acme-challenge/x: Connection refused", "could not connect to a.test on port 80"},
		{TLSALPN01, "unauthorized", "Failed to connect to 127.0.0.1:5001 for the tls-alpn-01 challenge", "on port 5001"},
		{TLSALPN01, "connection", "Timeout during connect (likely firewall problem)", "on port 443"},
		{HTTP01, "connection", `Get "http://m3.test/.well-known/acme-challenge/x": could not resolve URL "http://m3.test"`, "a.test does not resolve at the CA"},
		{HTTP01, "dns", "DNS problem: NXDOMAIN looking up A for a.test", "does not resolve at the CA"},
		{HTTP01, "unauthorized", "Non-200 status code from HTTP: http://a.test/.well-known/acme-challenge/x returned 404", "the CA got another answer for the token on port 80"},
		// The port of the URL the CA asked (an ops trial's answer listened on another: "port 80" misled).
		{HTTP01, "unauthorized", "Non-200 status code from HTTP: http://a.test:35080/.well-known/acme-challenge/x returned 404", "another answer for the token on port 35080: a.test must point at this host, and what answers on port 35080 must be this answer (is it listening there?)"},
		{DNS01, "unauthorized", "Incorrect TXT record found at _acme-challenge.a.test", "did not see the TXT record"},
		{HTTP01, "caa", "CAA record for a.test prevents issuance", "CAA record"},
		{HTTP01, "rejectedIdentifier", "the CA will not issue for a.test", ""},
	} {
		e := &ValidationError{Name: "a.test", Challenge: tt.challenge, Problem: &acme.Problem{Type: "urn:ietf:params:acme:error:" + tt.typ, Detail: tt.detail + "\n"}}
		got := e.Error()
		if !strings.HasPrefix(got, "validating a.test via "+tt.challenge+": urn:ietf:params:acme:error:"+tt.typ+": "+tt.detail) || strings.Contains(got, "\n") {
			t.Errorf("%s %s: %q does not start with the CA's problem on one line", tt.challenge, tt.typ, got)
		}
		if tt.want == "" && e.Advice() != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("%s %s: %q, want advice %q", tt.challenge, tt.typ, got, tt.want)
		}
	}
}

// TestValidationAdviceIP: for an IP address the advice is about the
// address, not DNS.
func TestValidationAdviceIP(t *testing.T) {
	e := &ValidationError{Name: "192.0.2.7", Challenge: HTTP01, Problem: &acme.Problem{Type: "urn:ietf:params:acme:error:connection", Detail: "connection refused"}}
	if got := e.Advice(); !strings.Contains(got, "check that this host has that address") || strings.Contains(got, "DNS") {
		t.Errorf("advice for an IP address: %q", got)
	}
}
