package rfc2136

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestReadKeyFile reads every key file form (NAME:ALG:SECRET between
// comments and blank lines, a BIND key clause, a Knot key section), and
// names (never quotes) a file that holds none, or a Knot section with
// several keys.
func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	const knot = "# hmac-sha256:certkeeper:c2VjcmV0\nkey:\n  - id: certkeeper\n    algorithm: hmac-sha256\n    secret: c2VjcmV0\n"
	for _, tc := range []struct{ name, body, want, wantErr string }{
		{"plain", "certkeeper:hmac-sha512:c2VjcmV0\n", "certkeeper:hmac-sha512:c2VjcmV0", ""},
		{"plain crlf", "certkeeper:hmac-sha512:c2VjcmV0\r\n", "certkeeper:hmac-sha512:c2VjcmV0", ""},
		{"plain with comments", "# the update key of a.example\n\n  ; made 2026-12-01\ncertkeeper:hmac-sha512:c2VjcmV0\n\n# end\n", "certkeeper:hmac-sha512:c2VjcmV0", ""},
		{"bind", "key \"certkeeper\" {\n\talgorithm hmac-sha512;\n\tsecret \"c2VjcmV0\";\n};\n", "certkeeper:hmac-sha512:c2VjcmV0", ""},
		{"bind two keys", "key \"other\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };\nkey \"certkeeper\" {\n\talgorithm hmac-sha512;\n\tsecret \"c2VjcmV0\";\n};\n", "", "holds 2 BIND key clauses (other, certkeeper): want one key per file"},
		{"bind unquoted name", "key certkeeper. { algorithm hmac-sha256; secret \"c2VjcmV0\"; };", "certkeeper.:hmac-sha256:c2VjcmV0", ""},
		{"knot", knot, "certkeeper:hmac-sha256:c2VjcmV0", ""},
		{"knot quoted, crlf", "key:\r\n- id: \"certkeeper\"\r\n  secret: \"c2VjcmV0\"\r\n  algorithm: hmac-sha512\r\n", "certkeeper:hmac-sha512:c2VjcmV0", ""},
		{"knot two keys", knot + "  - id: other\n    algorithm: hmac-sha256\n    secret: c2VjcmV0\n", "", "2 keys: want one key per file"},
		{"knot no secret", "key:\n  - id: certkeeper\n    algorithm: hmac-sha256\n", "", "has no secret"},
		{"knot no entry", "key:\n", "", "no entry"},
		{"knot not an entry", "key:\n  id: certkeeper\n", "", "entries of id, algorithm and secret"},
		{"two plain lines", "a:hmac-sha256:c2VjcmV0\nb:hmac-sha256:c2VjcmV0\n", "", "want NAME:ALG:SECRET"},
		{"only comments", "# certkeeper:hmac-sha256:c2VjcmV0\n", "", "want NAME:ALG:SECRET"},
		{"neither", "c2VjcmV0\n", "", "a Knot key section"},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.WriteFile(f, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadKeyFile(f)
		if got != tc.want || (err == nil) != (tc.want != "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: ReadKeyFile = %q, %v; want %q, an error saying %q", tc.name, got, err, tc.want, tc.wantErr)
		}
		if err != nil && (!strings.Contains(err.Error(), f) || strings.Contains(err.Error(), "c2VjcmV0")) {
			t.Errorf("%s: error %q should name the file and not quote it", tc.name, err)
		}
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadKeyFile(absent) = %v, want fs.ErrNotExist", err)
	}
}

// TestReadKeyFileKeymgr reads what Knot's keymgr -t NAME ALG prints, for
// both algorithms, into a key ParseKey takes.
func TestReadKeyFileKeymgr(t *testing.T) {
	bin := testsvc.LookPath(t, "keymgr", "install Debian's knot (apt-get install knot)")
	for _, alg := range []string{HMACSHA256, HMACSHA512} {
		out, err := exec.Command(bin, "-t", "certkeeper", alg).Output()
		if err != nil {
			t.Fatalf("keymgr -t certkeeper %s: %v", alg, err)
		}
		f := filepath.Join(t.TempDir(), "knot.key")
		if err := os.WriteFile(f, out, 0o600); err != nil {
			t.Fatal(err)
		}
		key, err := ReadKeyFile(f)
		if err != nil {
			t.Fatalf("ReadKeyFile(keymgr -t certkeeper %s): %v", alg, err)
		}
		var p Provider
		if err := p.ParseKey(key); err != nil || p.KeyName != "certkeeper" || p.Algorithm != alg || !strings.Contains(string(out), "secret: "+p.Secret+"\n") {
			t.Errorf("keymgr -t certkeeper %s: ParseKey(ReadKeyFile) = %v, key %s %s", alg, err, p.KeyName, p.Algorithm)
		}
	}
}
