package acmeca_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestDirectoryURLPasswordRedacted: user information in a directory URL,
// whatever characters its password holds, never reaches an error or the
// issuer ID (which names storage keys and appears in logs).
func TestDirectoryURLPasswordRedacted(t *testing.T) {
	for _, c := range strings.Split("/?#@:%", "") {
		iss := &acmeca.Issuer{DirectoryURL: "https://user:Sup3r" + c + "Secr3t@127.0.0.1:1/dir", Storage: filestore.New(t.TempDir())}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := iss.Profiles(ctx)
		cancel()
		if err == nil {
			t.Fatalf("Profiles from an unreachable CA = nil error")
		}
		for what, s := range map[string]string{"error": err.Error(), "ID": iss.ID()} {
			if s = strings.ToLower(s); strings.Contains(s, "sup3r") || strings.Contains(s, "secr3t") || strings.Contains(s, "%se") {
				t.Errorf("password with %q: %s %q shows the password", c, what, s)
			}
		}
	}
}
