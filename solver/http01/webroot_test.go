package http01

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mholt/acmez/v3/acme"
)

// TestWebroot presents two tokens in a document root without a
// .well-known directory, serves them with net/http's file server as a web
// server would, and checks that CleanUp leaves the root as it was.
func TestWebroot(t *testing.T) {
	root := t.TempDir()
	w := &Webroot{Dir: root}
	chals := []acme.Challenge{
		{Type: "http-01", Token: "tok_A-1", KeyAuthorization: "tok_A-1.thumb", Identifier: acme.Identifier{Value: "a.test"}},
		{Type: "http-01", Token: "tok_B-2", KeyAuthorization: "tok_B-2.thumb", Identifier: acme.Identifier{Value: "b.test"}},
	}
	for _, c := range chals {
		if err := w.Present(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	defer srv.Close()
	for _, c := range chals {
		resp, err := http.Get(srv.URL + PathPrefix + c.Token)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != c.KeyAuthorization {
			t.Errorf("GET %s: %d %q, want 200 %q", c.Token, resp.StatusCode, body, c.KeyAuthorization)
		}
	}
	if runtime.GOOS != "windows" {
		for path, want := range map[string]os.FileMode{
			filepath.Join(root, ".well-known"):                              0o755 | os.ModeDir,
			filepath.Join(root, ".well-known", "acme-challenge"):            0o755 | os.ModeDir,
			filepath.Join(root, ".well-known", "acme-challenge", "tok_A-1"): 0o644,
		} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			// The directories are 0755 whatever the umask
			// (TestWebrootUmask); the file too (atomicfile sets it).
			if fi.Mode() != want {
				t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
			}
		}
	}
	if err := w.CleanUp(t.Context(), chals[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".well-known", "acme-challenge", "tok_B-2")); err != nil {
		t.Errorf("cleaning up one token removed the other's file: %v", err)
	}
	if err := w.CleanUp(t.Context(), chals[1]); err != nil {
		t.Fatal(err)
	}
	if err := w.CleanUp(t.Context(), chals[1]); err != nil {
		t.Errorf("a second CleanUp of the same token: %v", err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("after CleanUp the root holds %v, want nothing", entries)
	}
}

// TestWebrootKeepsExisting checks that directories the web server's
// owner made stay, and that a file of theirs beside the token is kept.
func TestWebrootKeepsExisting(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, ".well-known", "acme-challenge")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &Webroot{Dir: root}
	c := acme.Challenge{Token: "t1", KeyAuthorization: "t1.k"}
	if err := w.Present(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if err := w.CleanUp(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the existing challenge directory was removed: %v", err)
	}
}

func TestWebrootRefuses(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		dir  string
		tok  string
		want string
	}{
		{"dot dot", root, "..", "base64url"},
		{"slash", root, "a/b", "base64url"},
		{"backslash", root, `a\b`, "base64url"},
		{"dot", root, "a.b", "base64url"},
		{"empty token", root, "", "base64url"},
		{"long token", root, strings.Repeat("a", 257), "base64url"},
		{"no dir", "", "tok", "no directory"},
		{"missing dir", filepath.Join(root, "missing"), "tok", "no such file"},
		{"not a dir", file, "tok", "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Webroot{Dir: tc.dir}).Present(t.Context(), acme.Challenge{Token: tc.tok, KeyAuthorization: "k"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Present: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("refused challenges left %v in the root", entries)
	}
}

// FuzzCheckToken: a token CheckToken accepts names a file directly in
// the challenge directory.
func FuzzCheckToken(f *testing.F) {
	for _, s := range []string{"tok", "..", "a/b", "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", "%2e%2e", "a\x00b"} {
		f.Add(s)
	}
	dir := filepath.Join("root", filepath.FromSlash(PathPrefix))
	f.Fuzz(func(t *testing.T, tok string) {
		if err := CheckToken(tok); err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("CheckToken(%q): %v is not ErrBadToken", tok, err)
			}
			return
		}
		p := filepath.Join(dir, tok)
		if filepath.Dir(p) != filepath.Clean(dir) || filepath.Base(p) != tok {
			t.Fatalf("CheckToken accepted %q, which names %s", tok, p)
		}
	})
}
