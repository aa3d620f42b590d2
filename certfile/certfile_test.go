package certfile

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/selfsigned"
	"github.com/certkeeper/certkeeper/storage"
)

// pair is a key and a self-signed chain for names, in PEM.
func pair(t *testing.T, names ...string) (keyPEM, chainPEM []byte) {
	t.Helper()
	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if keyPEM, err = storage.MarshalPrivateKeyPEM(key); err != nil {
		t.Fatal(err)
	}
	if chainPEM, err = selfsigned.Certificate(key, names, 0); err != nil {
		t.Fatal(err)
	}
	return keyPEM, chainPEM
}

func TestPaths(t *testing.T) {
	d := Dir(filepath.FromSlash("/x"))
	puny, err := hostname.Normalize("ünï.test")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		in       string
		wantBase string // "" for an error
	}{
		{"plain", "a.test", "a.test"},
		{"wildcard", "*.a.test", "wildcard_a.test"},
		{"IPv4", "127.0.0.1", "127.0.0.1"},
		{"IPv6", "::1", "__1"},
		{"punycode", puny, puny},
		{"empty", "", ""},
		{"upper case", "A.TEST", ""},
		{"unicode", "ünï.test", ""},
		{"trailing dot", "a.test.", ""},
		{"dot dot", "..", ""},
		{"traversal", "../etc/passwd", ""},
		{"slash", "a/b", ""},
		{"backslash", `a\b`, ""},
		{"double wildcard", "*.*.a.test", ""},
		{"IPv6 zone", "fe80::1%eth0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := d.Paths(tt.in)
			if tt.wantBase == "" {
				if err == nil {
					t.Errorf("Paths(%q) = %+v, want an error", tt.in, p)
				}
				return
			}
			want := Paths{
				Key:  filepath.Join(string(d), "private", tt.wantBase+".key"),
				Cert: filepath.Join(string(d), "certs", tt.wantBase+".pem"),
			}
			if err != nil || p != want {
				t.Errorf("Paths(%q) = %+v, %v, want %+v", tt.in, p, err, want)
			}
		})
	}
	if p, err := Dir("").Paths("a.test"); err == nil {
		t.Errorf(`Dir("").Paths("a.test") = %+v, want an error`, p)
	}
}

func TestWriteRead(t *testing.T) {
	tests := []struct {
		name  string
		names []string
	}{
		{"dns", []string{"a.test"}},
		{"wildcard", []string{"*.a.test", "a.test"}},
		{"IPv6", []string{"::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Dir(filepath.Join(t.TempDir(), "ssl")) // does not exist yet
			keyPEM, chainPEM := pair(t, tt.names...)
			p, err := d.Write(tt.names[0], keyPEM, chainPEM)
			if err != nil {
				t.Fatalf("Write(%q) = %v", tt.names[0], err)
			}
			if want, _ := d.Paths(tt.names[0]); p != want {
				t.Errorf("Write(%q) paths = %+v, want %+v", tt.names[0], p, want)
			}
			checkFile(t, p.Key, keyPEM)
			checkFile(t, p.Cert, chainPEM)
			checkMode(t, filepath.Dir(p.Key), fs.ModeDir|0o700)
			checkMode(t, p.Key, 0o600)
			checkMode(t, filepath.Dir(p.Cert), fs.ModeDir|0o755)
			checkMode(t, p.Cert, 0o644)

			key, chain, err := d.Read(tt.names[0])
			if err != nil {
				t.Fatalf("Read(%q) = %v", tt.names[0], err)
			}
			if got, _ := storage.MarshalPrivateKeyPEM(key); !bytes.Equal(got, keyPEM) || len(chain) != 1 {
				t.Errorf("Read(%q) = key %v, %d certificates, want the written key and 1 certificate", tt.names[0], key != nil, len(chain))
			}
			checkNoTemp(t, p)
		})
	}
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("ReadFile(%s) = %.40q, %v, want %.40q", path, got, err, want)
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return // Windows has no Unix permission bits
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != want {
		t.Errorf("mode of %s = %v, want %v", path, got, want)
	}
}

// checkNoTemp checks that no temporary file was left beside the pair.
func checkNoTemp(t *testing.T, p Paths) {
	t.Helper()
	for _, dir := range []string{filepath.Dir(p.Key), filepath.Dir(p.Cert)} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("temporary file %s left in %s", e.Name(), dir)
			}
		}
	}
}

func TestWriteKeepsExistingDirModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits")
	}
	d := Dir(t.TempDir())
	private := filepath.Join(string(d), "private")
	if err := os.Mkdir(private, 0o710); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(private, 0o710); err != nil {
		t.Fatal(err)
	}
	keyPEM, chainPEM := pair(t, "a.test")
	if _, err := d.Write("a.test", keyPEM, chainPEM); err != nil {
		t.Fatal(err)
	}
	checkMode(t, private, fs.ModeDir|0o710)
}

func TestReplaceKeepsOldReadable(t *testing.T) {
	d := Dir(t.TempDir())
	key1, chain1 := pair(t, "a.test")
	key2, chain2 := pair(t, "a.test")
	p, err := d.Write("a.test", key1, chain1)
	if err != nil {
		t.Fatal(err)
	}
	// A reader that opened the old files keeps reading them whole.
	oldKey, err := os.Open(p.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer oldKey.Close()
	oldCert, err := os.Open(p.Cert)
	if err != nil {
		t.Fatal(err)
	}
	defer oldCert.Close()

	if _, err := d.Write("a.test", key2, chain2); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		file *os.File
		want []byte
	}{{oldKey, key1}, {oldCert, chain1}} {
		if got, err := io.ReadAll(f.file); err != nil || !bytes.Equal(got, f.want) {
			t.Errorf("old %s after replace = %.40q, %v, want the old contents", f.file.Name(), got, err)
		}
	}
	checkFile(t, p.Key, key2)
	checkFile(t, p.Cert, chain2)
	checkMode(t, p.Key, 0o600)
	checkMode(t, p.Cert, 0o644)
	checkNoTemp(t, p)
}

func TestWriteRefuses(t *testing.T) {
	keyA, chainA := pair(t, "a.test")
	keyB, _ := pair(t, "a.test")
	_, chainOther := pair(t, "b.test")
	withKey := append(append([]byte{}, chainA...), keyA...)
	tests := []struct {
		name          string
		in            string
		key, chain    []byte
		wantErrIs     error
		wantErrSubstr string
	}{
		{"key mismatch", "a.test", keyB, chainA, ErrKeyMismatch, ""},
		{"name not in certificate", "b.test", keyA, chainA, nil, "does not list b.test"},
		{"other certificate", "a.test", keyA, chainOther, ErrKeyMismatch, ""},
		{"key in chain", "a.test", keyA, withKey, nil, `"PRIVATE KEY" block`},
		{"empty chain", "a.test", keyA, nil, nil, "no PEM certificate"},
		{"bad key", "a.test", []byte("junk"), chainA, nil, "private key"},
		{"invalid name", "A.test", keyA, chainA, nil, "not normalised"},
		{"traversal", "../a.test", keyA, chainA, nil, "invalid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Dir(t.TempDir())
			_, err := d.Write(tt.in, tt.key, tt.chain)
			if err == nil ||
				tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs) ||
				!strings.Contains(err.Error(), tt.wantErrSubstr) {
				t.Errorf("Write(%q) = %v, want an error (%v, %q)", tt.in, err, tt.wantErrIs, tt.wantErrSubstr)
			}
			if entries, _ := os.ReadDir(string(d)); len(entries) != 0 {
				t.Errorf("Write(%q) failed but created %d entries", tt.in, len(entries))
			}
		})
	}
}

// TestWriteRollback makes the chain's rename fail (a directory is in its
// place) and checks that the key is put back as it was.
func TestWriteRollback(t *testing.T) {
	key1, chain1 := pair(t, "a.test")
	key2, chain2 := pair(t, "a.test")
	tests := []struct {
		name    string
		initial bool // a key was there before
	}{
		{"replace", true},
		{"first write", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Dir(t.TempDir())
			p, _ := d.Paths("a.test")
			if tt.initial {
				if _, err := d.Write("a.test", key1, chain1); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(p.Cert); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(filepath.Join(p.Cert, "blocker"), 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Write("a.test", key2, chain2); err == nil {
				t.Fatalf("Write over a directory = nil, want an error")
			}
			if tt.initial {
				checkFile(t, p.Key, key1)
			} else if _, err := os.Stat(p.Key); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat(%s) = %v, want the new key removed", p.Key, err)
			}
			checkNoTemp(t, p)
		})
	}
}

func TestRead(t *testing.T) {
	d := Dir(t.TempDir())
	if _, _, err := d.Read("a.test"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read(missing) = %v, want fs.ErrNotExist", err)
	}
	key1, chain1 := pair(t, "a.test")
	key2, _ := pair(t, "a.test")
	p, err := d.Write("a.test", key1, chain1)
	if err != nil {
		t.Fatal(err)
	}
	// What a crash between the two renames would leave.
	if err := os.WriteFile(p.Key, key2, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Read("a.test"); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Read(mismatched pair) = %v, want ErrKeyMismatch", err)
	}
	if _, _, err := d.Read("A.TEST"); err == nil {
		t.Errorf("Read(%q) = nil error, want one", "A.TEST")
	}
}

func TestDefaultDir(t *testing.T) {
	d, err := DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	want := "/etc/ssl"
	if runtime.GOOS == "windows" || os.Geteuid() != 0 {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		want = filepath.Join(home, ".acme")
	}
	if string(d) != want {
		t.Errorf("DefaultDir() = %q, want %q", d, want)
	}
}

// TestWriteFile: the file is replaced whole with the mode asked for, and
// no temporary file is left beside it.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.pem")
	for i, data := range []string{"first\n", "second, longer\n"} {
		if err := WriteFile(path, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("write %d: read %q, %v; want %q", i, got, err, data)
		}
	}
	if fi, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o640) {
		t.Errorf("mode = %v, %v; want 0640", fi.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the directory, want 1 (no temporary left)", len(entries))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "b.pem"), []byte("x"), 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile into a missing directory = %v, want ErrNotExist", err)
	}
}

// TestNameOfBase: a file base spells its name back, and Paths of that name
// is the same file (trial 19: cert show wildcard_a.test was refused).
func TestNameOfBase(t *testing.T) {
	tests := []struct{ base, want string }{
		{"wildcard_a.test", "*.a.test"},
		{"2001_db8__1", "2001:db8::1"},
		{"a.test", "a.test"},
		{"192.0.2.7", "192.0.2.7"},
		{"no_such", "no_such"},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			got := NameOfBase(tt.base)
			if got != tt.want {
				t.Fatalf("NameOfBase(%q) = %q, want %q", tt.base, got, tt.want)
			}
			if tt.base == "no_such" {
				return
			}
			p, err := Dir("d").Paths(got)
			if err != nil || filepath.Base(p.Cert) != tt.base+".pem" {
				t.Errorf("Paths(%q) = %v, %v; want certs/%s.pem", got, p, err, tt.base)
			}
		})
	}
}
