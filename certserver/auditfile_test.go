package certserver_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/certserver"
)

// TestOpenAuditFile: the file is created 0600, starts with the "audit log
// opened" line and its attributes, and holds every line once closed.
func TestOpenAuditFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log", "certkeeper")
	name := filepath.Join(dir, "audit.log")
	af, err := certserver.OpenAuditFile(name, slog.New(slog.DiscardHandler), slog.Int("pid", 42))
	if err != nil {
		t.Fatal(err)
	}
	if err := af.Sync(); err != nil || af.Err() != nil {
		t.Fatalf("Sync = %v, Err = %v; want nil", err, af.Err())
	}
	af.Logger.Info("key handed out", slog.String("name", "a.test"))
	if err := af.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"msg":"audit log opened","pid":42`) || !strings.Contains(lines[1], `"name":"a.test"`) {
		t.Errorf("audit file =\n%s\nwant the opened line with pid 42, then the hand-out", data)
	}
	if fi, err := os.Stat(name); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Errorf("audit file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if fi, err := os.Stat(dir); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o700) {
		t.Errorf("created directory: %v, %v; want mode 0700", fi, err)
	}
	if _, err := certserver.OpenAuditFile(filepath.Join(name, "x"), nil); err == nil {
		t.Error("OpenAuditFile under a regular file succeeded")
	}
}

// TestOpenAuditFileRestrictsMode: an existing audit file that others may
// read (created 0644 by hand, or by logrotate's "create 0644") is made
// 0600, with a warning that says so and names the logrotate setting; one
// that is 0600 already gets no warning. Before, it stayed 0644 and nothing
// said so (security trial).
func TestOpenAuditFileRestrictsMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes do not say who may read a file on Windows")
	}
	name := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(name, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	for i, want := range []string{"its mode is now 0600", ""} {
		var logs strings.Builder
		af, err := certserver.OpenAuditFile(name, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := af.Close(); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("open %d: audit file mode = %v, %v; want 0600", i, fi.Mode().Perm(), err)
		}
		got := logs.String()
		switch {
		case want != "" && (!strings.Contains(got, "level=WARN") || !strings.Contains(got, want) ||
			!strings.Contains(got, "create 0600") || !strings.Contains(got, name) || !strings.Contains(got, "mode=0644")):
			t.Errorf("open %d: log =\n%s\nwant a warning that the 0644 file %s is now 0600, naming logrotate's create 0600", i, got, name)
		case want == "" && got != "":
			t.Errorf("open %d of a 0600 file: log =\n%s\nwant nothing", i, got)
		}
	}
}

// TestAuditFileFollowsRotation: after the file is moved away (logrotate's
// rename, then "create 0600") the next lines go to a file under the
// name, not to the rotated one; after it is removed, to a new one, 0600.
// Before, the lines went on into the rotated file, or into the deleted
// one, with no error (fleet trial).
func TestAuditFileFollowsRotation(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("an open file cannot be renamed or removed on Windows")
	}
	name := filepath.Join(t.TempDir(), "audit.log")
	af, err := certserver.OpenAuditFile(name, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	logged := func(msg string) {
		t.Helper()
		af.Logger.Info(msg)
		if err := af.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	read := func(file string) string {
		t.Helper()
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	logged("before rotation")
	if err := os.Rename(name, name+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, nil, 0o600); err != nil { // logrotate's "create 0600"
		t.Fatal(err)
	}
	logged("after rotation")
	if rotated, now := read(name+".1"), read(name); strings.Contains(rotated, "after rotation") || !strings.Contains(now, "after rotation") {
		t.Errorf("after a rotation:\nrotated file:\n%s\nfile:\n%s\nwant the new line in the file under the name", rotated, now)
	}
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	logged("after removal")
	if now := read(name); !strings.Contains(now, "after removal") {
		t.Errorf("after the file was removed: %s holds\n%s\nwant the new line", name, now)
	}
	if fi, err := os.Stat(name); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Errorf("the file made again: %v, %v; want mode 0600", fi, err)
	}
}
