package status_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/status"
)

// TestSeverity: what each state contributes to a check's status.
func TestSeverity(t *testing.T) {
	for _, tc := range []struct {
		cert status.Cert
		want int
	}{
		{status.Cert{State: status.Fine}, status.CheckOK},
		{status.Cert{State: status.Renewing}, status.CheckOK},
		{status.Cert{State: status.Failing}, status.CheckWarning},
		{status.Cert{State: status.Failing, FirstIssue: true}, status.CheckWarning},
		{status.Cert{State: status.Expiring, Issuer: "file"}, status.CheckWarning},
		{status.Cert{State: status.Expiring, Issuer: "acme"}, status.CheckCritical},
		{status.Cert{State: status.Expired, Issuer: "file"}, status.CheckCritical},
		{status.Cert{State: status.Revoked}, status.CheckCritical},
		{status.Cert{State: status.Damaged}, status.CheckCritical},
	} {
		if got := status.Severity(tc.cert); got != tc.want {
			t.Errorf("Severity(%s, issuer %q) = %d, want %d", tc.cert.State, tc.cert.Issuer, got, tc.want)
		}
	}
}

// TestPrinterCheck: the check's summary counts every state worst first,
// lists each problem with what the table would say of it, and lists at
// most 50, counting the rest.
func TestPrinterCheck(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var b strings.Builder
	p := &status.Printer{W: &b, Check: true, Now: at.Add(-time.Hour)}
	add := func(c status.Cert) {
		if err := p.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	add(status.Cert{Names: []string{"a.test"}, State: status.Fine, NotAfter: at})
	add(status.Cert{Names: []string{"b.test"}, State: status.Expired, NotAfter: at})
	add(status.Cert{Names: []string{"c.test"}, State: status.Revoked, Revoked: "keyCompromise"})
	for i := range 60 {
		add(status.Cert{Names: []string{fmt.Sprintf("f%d.test", i)}, State: status.Failing, LastError: "no", RetryAt: at, FirstIssue: i%2 == 1})
	}
	if err := p.Finish("/s", ""); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, want := range map[int]string{
		0:  "CERTKEEPER CRITICAL - 1 expired, 1 revoked, 60 failing, 1 fine of 33 certificate(s) and 30 name(s) with none yet | expired=1 damaged=0 revoked=1 expiring=0 failing=60 renewing=0 fine=1",
		1:  "b.test: expired at 2026-01-02T03:04:05Z",
		2:  "c.test: revoked (keyCompromise)",
		3:  "f0.test: failing: no (next attempt 2026-01-02T03:04:05Z)",
		4:  "f1.test: failing: no (tried again when a handshake asks for it, from 2026-01-02T03:04:05Z; certkeeper storage delete f1.test forgets it)",
		51: "... and 12 more; \"certkeeper status\" lists them all",
	} {
		if i >= len(lines) || lines[i] != want {
			t.Errorf("line %d of the check: want %q, got:\n%s", i, want, b.String())
		}
	}
	if len(lines) != 52 || p.CheckStatus() != status.CheckCritical {
		t.Errorf("%d lines, status %d; want 52 lines and CRITICAL", len(lines), p.CheckStatus())
	}
}
