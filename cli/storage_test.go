package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// issueLocal issues a certificate for name from the local CA into
// storageDir.
func issueLocal(t *testing.T, storageDir, name string) {
	t.Helper()
	r := ck(t, time.Minute, "cert", "issue", "--ca", "local", "-d", name, "--storage", storageDir, "--out-dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("cert issue -d %s: exit %d\n%s", name, r.code, r.stderr)
	}
}

// statusOf is what "certkeeper status --json" says of storageDir, without
// next_renewal (computed from the time of the run).
func statusOf(t *testing.T, storageDir string) []certStatus {
	t.Helper()
	r := ck(t, 30*time.Second, "status", "--json", "--storage", storageDir)
	if r.code != 0 {
		t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
	}
	var list []certStatus
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	for i := range list {
		list[i].NextRenewal = time.Time{}
	}
	return list
}

// files returns every file under dir (relative, slash-separated) and its
// content, checking each is mode 0600.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if runtime.GOOS != "windows" {
			if fi, _ := d.Info(); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
			}
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return m
}

// ckStdin is ck with stdin.
func ckStdin(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStorageExportImport moves certkeeper's state to a fresh storage, as
// to a new server: the files come back identical, 0600, and status lists
// the same certificates.
func TestStorageExportImport(t *testing.T) {
	src := t.TempDir()
	issueLocal(t, src, "a.test")
	issueLocal(t, src, "b.test")
	want := files(t, src)

	archive := filepath.Join(t.TempDir(), "state.tar.gz")
	r := ck(t, 30*time.Second, "storage", "export", "--storage", src, "--out", archive)
	if r.code != 0 {
		t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("export --out printed to stdout: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("exported %d keys", len(want))) {
		t.Errorf("export summary = %q, want %d keys exported", r.stderr, len(want))
	}
	fi, err := os.Stat(archive)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("archive has mode %v, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(archive)); len(entries) != 1 {
		t.Errorf("export left %d files beside the archive, want none", len(entries)-1)
	}

	dst := filepath.Join(t.TempDir(), "new")
	r = ck(t, 30*time.Second, "storage", "import", "--storage", dst, archive)
	if r.code != 0 {
		t.Fatalf("import: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("imported %d keys", len(want))) || !strings.Contains(r.stderr, "0 skipped as identical") {
		t.Errorf("import summary = %q", r.stderr)
	}
	got := files(t, dst)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s differs after import", k)
		}
	}
	if len(got) != len(want) {
		t.Errorf("imported %d files, want %d", len(got), len(want))
	}
	before, after := statusOf(t, src), statusOf(t, dst)
	if len(after) != 2 || fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("status after import:\n%v\nwant\n%v", after, before)
	}

	// Again, through stdout and stdin: all identical, all skipped.
	exp := ck(t, 30*time.Second, "storage", "export", "--storage", src)
	if exp.code != 0 {
		t.Fatalf("export to stdout: exit %d\n%s", exp.code, exp.stderr)
	}
	r = ckStdin(t, []byte(exp.stdout), "storage", "import", "--storage", dst, "-")
	if r.code != 0 {
		t.Fatalf("import -: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("imported 0 keys from stdin into %s, %d skipped as identical", dst, len(want))) {
		t.Errorf("second import summary = %q", r.stderr)
	}
}

// TestStorageImportConflict: keys that differ stop the import with nothing
// written, a list of the keys and the way out; --overwrite takes it.
func TestStorageImportConflict(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	issueLocal(t, src, "a.test")
	issueLocal(t, src, "b.test")
	issueLocal(t, dst, "a.test") // another local CA, another a.test
	archive := filepath.Join(t.TempDir(), "state.tar.gz")
	if r := ck(t, 30*time.Second, "storage", "export", "--storage", src, "--out", archive); r.code != 0 {
		t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
	}
	before := files(t, dst)

	r := ck(t, 30*time.Second, "storage", "import", "--storage", dst, archive)
	if r.code != 1 {
		t.Fatalf("import over different values: exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, s := range []string{"nothing was written", "certificates/local/a.test.json", "localca/root.json", "localca/intermediate.json", "--overwrite"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "b.test") {
		t.Errorf("stderr lists b.test, which is no conflict:\n%s", r.stderr)
	}
	if after := files(t, dst); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a refused import changed the storage")
	}

	r = ck(t, 30*time.Second, "storage", "import", "--overwrite", "--storage", dst, archive)
	if r.code != 0 {
		t.Fatalf("import --overwrite: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "3 overwritten") {
		t.Errorf("import --overwrite summary = %q, want 3 overwritten", r.stderr)
	}
	if got, want := statusOf(t, dst), statusOf(t, src); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("status after import --overwrite:\n%v\nwant\n%v", got, want)
	}
}

func TestStorageBadInput(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.tar.gz")
	if err := os.WriteFile(garbage, []byte("not an archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"group", []string{"storage"}, 2, "Commands:"},
		{"unknown", []string{"storage", "frobnicate"}, 2, "unknown command"},
		{"export argument", []string{"storage", "export", "extra"}, 2, "unexpected arguments [\"extra\"]: the archive goes to --out FILE"},
		{"import no file", []string{"storage", "import"}, 2, "takes one argument"},
		{"import two files", []string{"storage", "import", "a", "b"}, 2, "takes one argument"},
		{"bad flag", []string{"storage", "import", "--bogus", "a"}, 2, "--help"},
		{"export missing storage", []string{"storage", "export", "--storage", filepath.Join(dir, "missing")}, 1, "is --storage right?"},
		{"import missing file", []string{"storage", "import", "--storage", dst, filepath.Join(dir, "missing.tar.gz")}, 1, "missing.tar.gz"},
		{"import garbage", []string{"storage", "import", "--storage", dst, garbage}, 1, "invalid certkeeper archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ck(t, 30*time.Second, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, want %d with %q\nstderr:\n%s", r.code, tt.code, tt.want, r.stderr)
			}
		})
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("a refused import created the storage (%v)", err)
	}
}

// TestStorageExportDevNull: /dev/null is a character device but no
// terminal: exporting to it works.
func TestStorageExportDevNull(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no /dev/null")
	}
	src := t.TempDir()
	issueLocal(t, src, "a.test")
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	cmd := exec.CommandContext(t.Context(), binary, "storage", "export", "--storage", src)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = null, &stderr
	if err := cmd.Run(); err != nil || !slices.Contains(strings.Fields(stderr.String()), "exported") {
		t.Errorf("export > /dev/null: %v\n%s", err, stderr.String())
	}
}

// TestStorageTerminal: an archive holding private keys is not printed to a
// terminal, nor read from one (script(1) provides the terminal).
func TestStorageTerminal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uses util-linux script(1)")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skipf("script(1) unavailable (%v); install util-linux", err)
	}
	src := t.TempDir()
	issueLocal(t, src, "a.test")
	for _, tt := range []struct{ args, want string }{
		{"storage export --storage " + src, "refusing to write an archive holding private keys to a terminal"},
		{"storage import --storage " + filepath.Join(t.TempDir(), "dst") + " -", "refusing to read an archive from a terminal"},
	} {
		out, _ := exec.CommandContext(t.Context(), script, "-qec", binary+" "+tt.args, os.DevNull).CombinedOutput()
		if !strings.Contains(string(out), tt.want) || strings.Contains(string(out), "\x1f\x8b") {
			t.Errorf("certkeeper %s on a terminal printed:\n%q", tt.args, out)
		}
	}
}

// TestStorageMigrateForeign: storage migrate from a directory laid out like
// certbot's, to a plain or an encrypted storage, exits 1 naming some of
// its files and "certkeeper import", and writes nothing to --to; storage
// export of it writes no archive.
func TestStorageMigrateForeign(t *testing.T) {
	dir := t.TempDir()
	certbot := filepath.Join(dir, "letsencrypt")
	for name, body := range map[string]string{
		"archive/a.test/privkey1.pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"renewal/a.test.conf":         "version = 2.11.0\n",
		"live/README":                 "This directory contains your keys and certificates.\n",
	} {
		p := filepath.Join(certbot, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keyFile := filepath.Join(dir, "storage.key")
	if err := os.WriteFile(keyFile, []byte(ck(t, 30*time.Second, "storage", "keygen").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		extra []string
	}{
		{"plain", nil},
		{"encrypted", []string{"--to-key-file", keyFile}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			to := filepath.Join(t.TempDir(), "st")
			r := ck(t, 30*time.Second, append([]string{"storage", "migrate", "--from", certbot, "--to", to}, tt.extra...)...)
			for _, want := range []string{
				"--from " + certbot + ": 3 keys certkeeper never writes (archive/a.test/privkey1.pem, live/README, renewal/a.test.conf)",
				"does not look like certkeeper storage", "nothing was written", "certkeeper import --from TOOL " + certbot, "certbot, lego, acme.sh",
			} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
				}
			}
			if r.code != 1 || strings.Contains(r.stderr, "migrated") {
				t.Errorf("exit %d, want 1 and no success message\nstderr:\n%s", r.code, r.stderr)
			}
			if got := files(t, to); len(got) != 0 {
				t.Errorf("--to holds %d files after a refused migrate, want none: %v", len(got), slices.Collect(maps.Keys(got)))
			}
		})
	}
	out := filepath.Join(dir, "state.tar.gz")
	r := ck(t, 30*time.Second, "storage", "export", "--storage", certbot, "--out", out)
	if r.code != 1 || !strings.Contains(r.stderr, "storage "+certbot+": 3 keys certkeeper never writes") {
		t.Errorf("storage export of a certbot directory: exit %d, want 1 saying it is not certkeeper storage\nstderr:\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused export wrote %s (%v)", out, err)
	}
}

// TestStorageKeygenFileMode: "storage keygen > FILE" under umask 022 leaves
// FILE mode 0600, saying so, so that --storage-key-file takes it; a pipe
// gets the key with nothing on stderr.
func TestStorageKeygenFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes do not carry group and other bits on Windows")
	}
	name := filepath.Join(t.TempDir(), "storage.key")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o644); err != nil { // whatever the test's umask
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), binary, "storage", "keygen")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = f, &stderr
	err = cmd.Run()
	f.Close()
	if err != nil {
		t.Fatalf("storage keygen > FILE: %v\n%s", err, stderr.String())
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Errorf("storage keygen > FILE left mode %#o, %d bytes; want 0600 and a key", fi.Mode().Perm(), fi.Size())
	}
	if want := "made it 0600"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q does not say %q", stderr.String(), want)
	}
	r := ck(t, 30*time.Second, "storage", "export", "--storage", t.TempDir(), "--storage-key-file", name, "--out", filepath.Join(t.TempDir(), "s.tar.gz"))
	if r.code != 0 {
		t.Errorf("storage export with the key file: exit %d\n%s", r.code, r.stderr)
	}
	// storage export > FILE: the archive holds private keys; the same.
	archiveFile := filepath.Join(t.TempDir(), "s.tar.gz")
	a, err := os.OpenFile(archiveFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		err = a.Chmod(0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	export := exec.CommandContext(t.Context(), binary, "storage", "export", "--storage", t.TempDir())
	stderr.Reset()
	export.Stdout, export.Stderr = a, &stderr
	err = export.Run()
	a.Close()
	var mode os.FileMode
	if fi, serr := os.Stat(archiveFile); serr == nil {
		mode = fi.Mode().Perm()
	}
	if err != nil || mode != 0o600 || !strings.Contains(stderr.String(), "made it 0600") {
		t.Errorf("storage export > FILE (0644): %v, mode %#o, stderr %q; want 0600 and a line saying so", err, mode, stderr.String())
	}

	r = ck(t, 30*time.Second, "storage", "keygen")
	if r.code != 0 || len(r.stdout) == 0 || r.stderr != "" {
		t.Errorf("storage keygen | ...: exit %d, stdout %d bytes, stderr %q; want a key and nothing else", r.code, len(r.stdout), r.stderr)
	}
}

// TestStorageMigrateUnreachable: storage migrate to a server that cannot
// be reached fails, naming it, instead of warning as a proxy would ("new
// names and renewals wait for it") and then saying "verified"; a key
// file that cannot be read is named by its own flag, --to-key-file.
func TestStorageMigrateUnreachable(t *testing.T) {
	t.Parallel()
	from := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // a port nothing listens on
	r := ck(t, 60*time.Second, "storage", "migrate", "--from", from, "--to", "redis://"+dead+"/0")
	if r.code != 1 || !strings.Contains(r.stderr, "--to: redis://"+dead+"/0 cannot be reached") || strings.Contains(r.stderr, "verified") ||
		strings.Contains(r.stderr, "renewals wait") {
		t.Errorf("migrate to an unreachable Redis: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = ck(t, 30*time.Second, "storage", "migrate", "--from", from, "--to", filepath.Join(t.TempDir(), "st"), "--to-key-file", filepath.Join(from, "missing.key"))
	if r.code != 1 || !strings.Contains(r.stderr, "storage migrate: --to-key-file: ") || strings.Contains(r.stderr, "--storage") {
		t.Errorf("migrate with a missing --to-key-file: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}
