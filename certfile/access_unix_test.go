//go:build unix

package certfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/fileowner"
)

// TestReplaceKeepsGroupAccess: a renewal keeps what the operator gave the
// files: a key made 0640 for a web server's group (Debian's ssl-cert)
// keeps its group and group-read bit (a migration trial found it 0600
// root:root after a renewal: the server's workers lost it), but never
// gains others' bits (a key left 0644 becomes 0640); new files are 0600
// and 0644.
func TestReplaceKeepsGroupAccess(t *testing.T) {
	d := Dir(t.TempDir())
	key1, chain1 := pair(t, "a.test")
	key2, chain2 := pair(t, "a.test")
	p, err := d.Write("a.test", key1, chain1)
	if err != nil {
		t.Fatal(err)
	}
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 65534 // nogroup: root may give any group
	}
	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{{p.Key, 0o644}, {p.Cert, 0o640}} {
		if err := os.Chmod(f.path, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f.path, -1, gid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Write("a.test", key2, chain2); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		want fs.FileMode
	}{{p.Key, 0o640}, {p.Cert, 0o640}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if g, _ := fileowner.GID(fi); fi.Mode().Perm() != f.want || g != gid {
			t.Errorf("%s after a renewal: mode %v group %d, want %v group %d", f.path, fi.Mode().Perm(), g, f.want, gid)
		}
	}
}

// TestOtherUsersFilesNotTrusted: a key is not written into a directory
// its group or others may write, nor one another user owns, and it takes
// no group from a key file another user put in its place: a security
// trial's cert issue, run as root into a directory nobody made, gave the
// new key to nobody's group.
func TestOtherUsersFilesNotTrusted(t *testing.T) {
	key, chain := pair(t, "a.test")
	d := Dir(t.TempDir())
	private := filepath.Join(string(d), "private")
	if err := os.Mkdir(private, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(private, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write("a.test", key, chain); err == nil || !strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("Write with a private/ others may write = %v, want a refusal", err)
	}
	if os.Geteuid() != 0 {
		return // the rest plants files as another user
	}
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(private, 65534, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write("a.test", key, chain); err == nil || !strings.Contains(err.Error(), "belongs to user 65534") {
		t.Errorf("Write with a private/ nobody owns = %v, want a refusal", err)
	}
	// A key file of nobody's, group nogroup 0640, in root's private/.
	if err := os.Chown(private, 0, -1); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(private, "a.test.key")
	if err := os.WriteFile(planted, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(planted, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	p, err := d.Write("a.test", key, chain)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p.Key)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := fileowner.GID(fi); g == 65534 || fi.Mode().Perm() != 0o600 {
		t.Errorf("the new key: mode %v group %d; want 0600, not the planted file's group", fi.Mode().Perm(), g)
	}
}

// TestOutDirOfAnotherUser: run as root on an out-dir another user owns or
// changed, nothing is read from it or written through it (a security
// trial's root cron renewal had a planted key signed, copied /etc/shadow
// through a symbolic link to a file that user could read, and wrote
// through private/ and certs/ links into root's directories). Needs root,
// to give files to another user.
func TestOutDirOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	key, chain := pair(t, "a.test")
	// DIR of nobody's.
	d := Dir(t.TempDir())
	if err := os.Chown(string(d), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckOwned(); err == nil || !strings.Contains(err.Error(), "belongs to user 65534") {
		t.Errorf("CheckOwned of a directory nobody owns = %v, want a refusal", err)
	}
	if _, err := d.Write("a.test", key, chain); err == nil {
		t.Error("Write into a directory nobody owns: no error")
	}

	// private/ and certs/: links nobody made to root's directories.
	d = Dir(t.TempDir())
	target := t.TempDir()
	precious := filepath.Join(target, "a.test.key")
	if err := os.WriteFile(precious, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"private", "certs"} {
		link := filepath.Join(string(d), sub)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(link, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.CheckOwned(); err == nil || !strings.Contains(err.Error(), "(a symbolic link) belongs to user 65534") {
		t.Errorf("CheckOwned with links nobody made = %v, want a refusal", err)
	}
	if _, err := d.Write("a.test", key, chain); err == nil {
		t.Error("Write through links nobody made: no error")
	}
	if data, _ := os.ReadFile(precious); string(data) != "precious" {
		t.Errorf("a file the links lead to was replaced: %q", data)
	}

	// certs/NAME.pem a link to a secret: not copied to NAME.pem.old.
	d = Dir(t.TempDir())
	p, err := d.Write("a.test", key, chain)
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root:secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.Cert); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, p.Cert); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteKeepOld("a.test", key, chain); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(p.Cert + ".old"); err == nil && strings.Contains(string(data), "secret") {
		t.Errorf("a link's target was copied to %s.old: %q", p.Cert, data)
	}
}

// TestPairFilesNotRegular: a named pipe put in place of a key or a
// certificate file is refused at once by Read, Pairs and WriteKeepOld,
// where opening it hung a renewal for good (a security trial).
func TestPairFilesNotRegular(t *testing.T) {
	d := Dir(t.TempDir())
	key, chain := pair(t, "a.test")
	p, err := d.Write("a.test", key, chain)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.Cert); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p.Cert, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := d.Read("a.test")
		if _, perr := d.Pairs(); err != nil && perr == nil {
			_, err = d.WriteKeepOld("a.test", key, chain)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WriteKeepOld over a named pipe: %v, want the pair replaced", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a named pipe in place of the certificate file hangs")
	}
}
