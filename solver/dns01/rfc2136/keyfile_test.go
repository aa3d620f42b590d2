package rfc2136

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadKeyFile reads both key file forms, and names (never quotes) a
// file that holds neither.
func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, want string }{
		{"plain", "certkeeper:hmac-sha512:c2VjcmV0\n", "certkeeper:hmac-sha512:c2VjcmV0"},
		{"bind", "key \"certkeeper\" {\n\talgorithm hmac-sha512;\n\tsecret \"c2VjcmV0\";\n};\n", "certkeeper:hmac-sha512:c2VjcmV0"},
		{"bind unquoted name", "key certkeeper. { algorithm hmac-sha256; secret \"c2VjcmV0\"; };", "certkeeper.:hmac-sha256:c2VjcmV0"},
		{"neither", "c2VjcmV0\n", ""},
	} {
		f := filepath.Join(dir, tc.name)
		if err := os.WriteFile(f, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadKeyFile(f)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("%s: ReadKeyFile = %q, %v; want %q", tc.name, got, err, tc.want)
		}
		if err != nil && (!strings.Contains(err.Error(), f) || strings.Contains(err.Error(), "c2VjcmV0")) {
			t.Errorf("%s: error %q should name the file and not quote it", tc.name, err)
		}
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadKeyFile(absent) = %v, want fs.ErrNotExist", err)
	}
}
