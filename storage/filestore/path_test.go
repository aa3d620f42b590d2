package filestore

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/storage"
)

// FuzzPath checks that every valid key maps to a file strictly inside Dir
// and outside the lock directory.
func FuzzPath(f *testing.F) {
	for _, k := range []string{
		"certificates/x/a.test.json", "a", "a/b/c", "..", "a/../b", "/abs", "a\\b", "C:/x", ".locks/x",
		"a/.tmp-1", "~", "%2F", "a b/c", "ü/ä",
	} {
		f.Add(k)
	}
	dir := filepath.Join(f.TempDir(), "store")
	s := New(dir)
	f.Fuzz(func(t *testing.T, key string) {
		if storage.ValidateKey(key) != nil {
			return
		}
		p, err := s.path(key)
		if err != nil {
			t.Fatalf("path(%q) = %v", key, err)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || !filepath.IsLocal(rel) || rel == "." {
			t.Fatalf("path(%q) = %q, which is not strictly inside %q (rel %q, %v)", key, p, dir, rel, err)
		}
		if filepath.ToSlash(rel) != key {
			t.Fatalf("path(%q) = %q, want the key's own path under %q", key, p, dir)
		}
		if first, _, _ := strings.Cut(filepath.ToSlash(rel), "/"); first == locksDir || strings.HasPrefix(first, ".") {
			t.Fatalf("path(%q) = %q is in a directory the store keeps for itself", key, p)
		}
	})
}

// FuzzLockDirName checks that valid lock names map one to one, even on a
// case-insensitive file system, to single safe file names.
func FuzzLockDirName(f *testing.F) {
	f.Add("issue/a.test", "issue/A.test")
	f.Add("account/acme-v02.api.letsencrypt.org-directory", "account%2Facme")
	f.Add("issue/*.a.test", "issue/%2A.a.test")
	f.Add(strings.Repeat("a", 300), strings.Repeat("a", 301))
	f.Add("~", "%7E")
	f.Fuzz(func(t *testing.T, a, b string) {
		if storage.ValidateKey(a) != nil {
			return
		}
		da := lockDirName(a)
		if da == "" || len(da) > 255 || strings.ContainsAny(da, `/\:*?"<>|`) || strings.HasPrefix(da, ".") ||
			strings.HasSuffix(da, ".") || !filepath.IsLocal(da) || filepath.Base(da) != da {
			t.Fatalf("lockDirName(%q) = %q, not a safe file name", a, da)
		}
		if storage.ValidateKey(b) != nil || a == b {
			return
		}
		if db := lockDirName(b); strings.EqualFold(da, db) {
			t.Fatalf("lockDirName(%q) = %q and lockDirName(%q) = %q are one file on a case-insensitive file system", a, da, b, db)
		}
	})
}

func TestLockDirName(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{"issue/a.test", "issue%2Fa.test"},
		{"issue/*.a.test", "issue%2F%2A.a.test"},
		{"account/acme-v02.api.letsencrypt.org-directory", "account%2Facme-v02.api.letsencrypt.org-directory"},
		{"localca", "localca"},
		{"A_b", "%41_b"},
		{"100%", "100%25"},
		{strings.Repeat("a", 201), "~cd1a8e4bd9ea8b1d6b0d9c7ef2ee6ff89b1a6d3c91e1ef5a2d4d2f3c1c0b3a9e"},
	} {
		got := lockDirName(tt.name)
		if strings.HasPrefix(tt.want, "~") {
			if !strings.HasPrefix(got, "~") || len(got) != 65 {
				t.Errorf("lockDirName(%.20q...) = %q, want \"~\" and a SHA-256", tt.name, got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("lockDirName(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestPathExported: Path is the file Load reads, and refuses a key
// storage.ValidateKey refuses.
func TestPathExported(t *testing.T) {
	s := New(t.TempDir())
	if err := s.Store(t.Context(), "accounts/x/a@b.test.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	p, err := s.Path("accounts/x/a@b.test.json")
	if want := filepath.Join(s.Dir, "accounts", "x", "a@b.test.json"); err != nil || p != want {
		t.Errorf("Path = %q, %v; want %q", p, err, want)
	}
	if _, err := s.Path("../x"); err == nil {
		t.Error("Path(../x) = nil error")
	}
}
