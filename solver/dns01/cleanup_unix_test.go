//go:build unix

package dns01_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/solver/dns01"
	dnsexec "github.com/certkeeper/certkeeper/solver/dns01/exec"
	"github.com/mholt/acmez/v3/acme"
)

// TestPresentFailedCleansUp: a present that fails, or is interrupted,
// after the hook may have set the record is followed by the hook's
// cleanup of that record, as lego and certbot run theirs, even though the
// caller's context has ended; a cleanup that fails too is logged, and
// Present returns the present's error. CleanUp afterwards does nothing
// more. Through the exec provider's own interface (PresentChallenge) and
// through the libdns one (AppendRecords).
func TestPresentFailedCleansUp(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		present   string // the hook's present, after it logged its call
		cleanup   string
		interrupt bool
		libdns    bool
		wantWarn  bool
	}{
		{name: "failed", present: "echo record created; exit 1", cleanup: "exit 0"},
		{name: "failed via AppendRecords", present: "echo record created; exit 1", cleanup: "exit 0", libdns: true},
		{name: "interrupted", present: `sleep 30 & echo $! > "$PID_FILE"; wait`, cleanup: "exit 0", interrupt: true},
		{name: "cleanup fails", present: "exit 1", cleanup: "echo no such record >&2; exit 2", wantWarn: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			calls, pidFile := filepath.Join(dir, "calls"), filepath.Join(dir, "pid")
			script := writeScript(t, `echo "$1 $2 $3" >> "$CALLS"
case "$1" in
present) `+tt.present+` ;;
cleanup) `+tt.cleanup+` ;;
esac
`)
			var p dns01.Provider = &dnsexec.Provider{Program: script, Env: []string{"CALLS=" + calls, "PID_FILE=" + pidFile}}
			if tt.libdns {
				p = &recording{Provider: p} // AppendRecords, not PresentChallenge
			}
			var logs testsvc.Buffer
			s := &dns01.Solver{Provider: p, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
				Resolver: dns01.Resolver{Servers: []string{"127.0.0.1:1"}, Zones: []string{"a.test"}}}
			chal := acme.Challenge{Type: acme.ChallengeTypeDNS01, URL: "https://ca.test/chal/1", Token: "tok",
				KeyAuthorization: "tok.thumb", Identifier: acme.Identifier{Type: "dns", Value: "a.test"}}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Present(ctx, chal) }()
			if tt.interrupt {
				child := testsvc.ReadPID(t, pidFile, 10*time.Second)
				cancel()
				defer testsvc.WaitExited(t, child, 5*time.Second)
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Present did not return within 30s")
			}
			if err == nil || !strings.Contains(err.Error(), "setting TXT record _acme-challenge.a.test.") {
				t.Errorf("Present = %v, want the present's error", err)
			}
			value := chal.DNS01KeyAuthorization()
			want := "present _acme-challenge.a.test. " + value + "\ncleanup _acme-challenge.a.test. " + value + "\n"
			if got, _ := os.ReadFile(calls); string(got) != want {
				t.Errorf("the hook was run as\n%s\nwant\n%s", got, want)
			}
			warned := strings.Contains(logs.String(), "level=WARN msg=\"dns-01 record not removed after setting it failed\"")
			if warned != tt.wantWarn || tt.wantWarn && !strings.Contains(logs.String(), "no such record") {
				t.Errorf("logs:\n%s\nwant a warning with the cleanup's error: %t", logs.String(), tt.wantWarn)
			}
			if err := s.CleanUp(t.Context(), chal); err != nil {
				t.Errorf("CleanUp after a failed Present = %v, want nil", err)
			}
			if got, _ := os.ReadFile(calls); string(got) != want {
				t.Errorf("after CleanUp the hook was run as\n%s\nwant no more than\n%s", got, want)
			}
		})
	}
}

// TestPresentFailedRemovesRecord: the trial's hook, which sets the record
// with nsupdate and then fails, leaves nothing in the zone of a real
// named: Present's cleanup removed what it set.
func TestPresentFailedRemovesRecord(t *testing.T) {
	t.Parallel()
	named := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})
	nsupdate := testsvc.LookPath(t, "nsupdate", "install Debian's bind9-dnsutils")
	host, port, _ := net.SplitHostPort(named.Addr())
	script := writeScript(t, `set -e
case "$1" in present) op=add ;; cleanup) op=delete ;; *) exit 2 ;; esac
printf 'server %s %s\nupdate %s %s 60 TXT "%s"\nsend\n' "$NS_HOST" "$NS_PORT" "$op" "$2" "$3" | "$NSUPDATE" -t 5 -y "$TSIG"
[ "$1" = cleanup ] || { echo "record created, then the API timed out" >&2; exit 1; }
`)
	p := &dnsexec.Provider{Program: script, Env: []string{"NS_HOST=" + host, "NS_PORT=" + port, "NSUPDATE=" + nsupdate,
		"TSIG=" + named.Algorithm() + ":" + named.KeyName() + ":" + named.Secret()}}
	s := &dns01.Solver{Provider: p, Resolver: dns01.Resolver{Servers: []string{named.Addr()}}}
	chal := acme.Challenge{Type: acme.ChallengeTypeDNS01, URL: "https://ca.test/chal/1", Token: "tok",
		KeyAuthorization: "tok.thumb", Identifier: acme.Identifier{Type: "dns", Value: "a.test"}}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := s.Present(ctx, chal); err == nil || !strings.Contains(err.Error(), "the API timed out") {
		t.Fatalf("Present = %v, want the hook's failure", err)
	}
	if n := named.Updates(); n != 2 {
		t.Errorf("named applied %d updates, want 2 (the add, the cleanup's delete)", n)
	}
	if got := named.DigTXT(t, "_acme-challenge.a.test"); got != "" {
		t.Errorf("dig TXT _acme-challenge.a.test = %q after the failed present, want nothing", got)
	}
}
