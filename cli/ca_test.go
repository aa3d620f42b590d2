package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestCARootLogging: "ca root" honours the global log flags as every other
// command does. It used to log the creation of the local CA through the
// default logger, at Info under the default warn level and in the log
// package's format whatever --log-format said, so a user piping the root
// into a file saw two stray lines.
func TestCARootLogging(t *testing.T) {
	r := ck(t, 30*time.Second, "ca", "root", "--storage", t.TempDir())
	if r.code != 0 || !strings.Contains(r.stdout, "BEGIN CERTIFICATE") {
		t.Fatalf("ca root: exit %d\n%s", r.code, r.stderr)
	}
	if want := "held no local CA: created a new one"; !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("ca root at the default log level: stderr should be the one line %q:\n%s", want, r.stderr)
	}
	r = ck(t, 30*time.Second, "ca", "root", "--storage", t.TempDir(), "--log-level", "info", "--log-format", "json")
	if r.code != 0 {
		t.Fatalf("ca root --log-level info: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `"msg":"local CA root created"`) {
		t.Errorf("ca root --log-level info --log-format json did not log the CA's creation as JSON:\n%s", r.stderr)
	}
	// In the text format a command (not a service) logs as it writes its
	// own lines, without slog's time and level fields (three trials read
	// those lines as out of place between the command's).
	r = ck(t, 30*time.Second, "ca", "root", "--storage", t.TempDir(), "--log-level", "info")
	if !strings.Contains(r.stderr, "certkeeper: local CA root created (subject=") || strings.Contains(r.stderr, "level=") {
		t.Errorf("ca root --log-level info: the log lines are not in the command's style:\n%s", r.stderr)
	}
}

// TestCARootTypo: ca root, ca trust and ca untrust with a --storage
// directory that does not exist refuse, and create nothing there; they
// used to create a new CA in it and print (or trust) its root, which no
// certificate of the user's proxy chains to. A second ca root in a
// storage with a CA prints the same root and says nothing.
func TestCARootTypo(t *testing.T) {
	typo := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{
		{"ca", "root", "--storage", typo},
		{"ca", "trust", "--no-system", "--no-nss=false", "--storage", typo},
		{"ca", "untrust", "--no-system", "--storage", typo},
	} {
		r := ck(t, 30*time.Second, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "no local CA in "+typo+": the directory does not exist (is --storage right?)") || r.stdout != "" {
			t.Errorf("%v: exit %d, want 1 and the missing directory named\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(typo); err == nil {
			t.Fatalf("%v created %s", args, typo)
		}
	}
	dir := t.TempDir()
	r := ck(t, 30*time.Second, "ca", "untrust", "--no-system", "--storage", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "no local CA in "+dir+" (is --storage right?)") {
		t.Errorf("ca untrust in a storage without a CA: exit %d\n%s", r.code, r.stderr)
	}
	// A storage that holds other things (an ACME CA's) gets no new CA
	// either: a trial printed a root that nothing chained to.
	acme := t.TempDir()
	if err := filestore.New(acme).Store(t.Context(), "accounts/ca.test/a@b.test.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if r := ck(t, 30*time.Second, "ca", "root", "--storage", acme); r.code != 1 || r.stdout != "" ||
		!strings.Contains(r.stderr, "no local CA in "+acme+", which holds other certificates or accounts (is --storage right?)") {
		t.Errorf("ca root in a storage of other things: exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if keys, _ := filestore.New(acme).List(t.Context(), ""); len(keys) != 1 {
		t.Errorf("ca root refused, but the storage now holds %v", keys)
	}
	first := ck(t, 30*time.Second, "ca", "root", "--storage", dir)
	again := ck(t, 30*time.Second, "ca", "root", "--storage", dir)
	if first.code != 0 || again.code != 0 || first.stdout != again.stdout || again.stderr != "" {
		t.Errorf("ca root twice: exits %d, %d; same root %v; second stderr %q", first.code, again.code, first.stdout == again.stdout, again.stderr)
	}
}
