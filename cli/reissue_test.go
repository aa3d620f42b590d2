package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
)

// TestIssueAgain: cert issue for a name whose files are there says what
// the new certificate replaced (names dropped, renewal settings changed);
// an --out-dir that cannot be written is found before anything is ordered.
func TestIssueAgain(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	storageDir, out := t.TempDir(), t.TempDir()
	args := pebbleArgs(ca, storageDir, out)

	r := ck(t, time.Minute, append(args, "-d", "t.test", "-d", "www.t.test", "--challenge", "tls-alpn-01", "--email", "x@t.test")...)
	if r.code != 0 {
		t.Fatalf("first issue: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "replaced") {
		t.Errorf("a first issuance says it replaced something:\n%s", r.stderr)
	}
	r = ck(t, time.Minute, append(args, "-d", "t.test", "--no-apex", "--email", "x@t.test")...)
	if r.code != 0 {
		t.Fatalf("second issue: exit %d\n%s", r.code, r.stderr)
	}
	for _, w := range []string{"replaced the certificate of t.test", "no longer for www.t.test", "challenge tls-alpn-01 -> http-01"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("second issue's stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	r = ck(t, time.Minute, append(args, "-d", "t.test", "--no-apex", "--email", "x@t.test")...)
	if r.code != 0 || strings.Contains(r.stderr, "replaced") {
		t.Errorf("the same issuance again: exit %d, and it says it replaced something:\n%s", r.code, r.stderr)
	}

	// An --out-dir under a regular file cannot be created: refused before
	// the order, which a rerun with the right directory would repeat.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	orders := ca.Orders()
	r = ck(t, time.Minute, append(pebbleArgs(ca, storageDir, filepath.Join(file, "ssl")), "-d", "u.test")...)
	if r.code != 1 || !strings.Contains(r.stderr, "nothing was ordered") || !strings.Contains(r.stderr, "not a directory") {
		t.Errorf("unwritable --out-dir: exit %d, want 1 and the reason:\n%s", r.code, r.stderr)
	}
	if ca.Orders() != orders {
		t.Errorf("%d orders placed for an --out-dir that cannot be written", ca.Orders()-orders)
	}
}

// TestCANotDirectory: a --ca URL that reaches a server but not an ACME
// directory (a wrong path: 404; http:// to the HTTPS port: 400) is said
// to be that, on one line, with the flag to check; it was "cannot reach
// the ACME CA", with the 404 page's newline in the middle (trial 14).
func TestCANotDirectory(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	for _, tt := range []struct{ url, want string }{
		{strings.TrimSuffix(ca.DirectoryURL(), "/dir") + "/directory", "answered HTTP 404, not an ACME directory"},
		{"http://" + strings.TrimPrefix(strings.TrimSuffix(ca.DirectoryURL(), "/dir"), "https://") + "/dir", "answered HTTP 400, the server speaks HTTPS"},
	} {
		args := pebbleArgs(ca, t.TempDir(), t.TempDir())
		args[3] = tt.url // --ca's value
		r := ck(t, time.Minute, append(args, "-d", "a.test")...)
		if r.code != 1 || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "check --ca") || strings.Contains(r.stderr, "cannot reach") {
			t.Errorf("--ca %s: exit %d, want 1 saying %q and check --ca:\n%s", tt.url, r.code, tt.want, r.stderr)
		}
		for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
			if strings.HasPrefix(line, ";") {
				t.Errorf("--ca %s: the message is split over lines:\n%s", tt.url, r.stderr)
			}
		}
	}
}
