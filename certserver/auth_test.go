package certserver_test

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestLoadTokensMode: a token file others may read or write, or its
// group write, is refused with its mode and the fix; a 0600 one is read,
// and so is a 0640 or 0440 one in this process's own group (a Kubernetes
// secret reaches a service that way: a container trial's was refused),
// but not in another group.
func TestLoadTokensMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no group and other permission bits")
	}
	f := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(f, []byte(token1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o600, 0o640, 0o440} {
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
		if tokens, err := certserver.LoadTokens(f); err != nil || len(tokens) != 1 {
			t.Fatalf("LoadTokens(mode %04o in this process's group) = %v, %v", mode, tokens, err)
		}
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(f, 0, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := certserver.LoadTokens(f); err == nil || !strings.Contains(err.Error(), "lets group ") {
			t.Errorf("LoadTokens(0440 in another group) = %v, want a refusal naming the group", err)
		}
		if err := os.Chown(f, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []os.FileMode{0o604, 0o620, 0o666} {
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
		_, err := certserver.LoadTokens(f)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), fmt.Sprintf("mode %04o", mode)) {
			t.Errorf("LoadTokens(mode %04o) = %v, want a refusal naming the mode and chmod 600", mode, err)
		}
	}
}

// TestSetTokens: tokens swapped while requests run: the removed one gets
// 401 from then on, the kept one never fails.
func TestSetTokens(t *testing.T) {
	s, _ := localServer(t, nil)
	h := s.Config.Handler.(*certserver.Handler)
	if resp, _ := get(t, s.URL+"/v1/certificates/a.test", token2); resp.StatusCode != 200 {
		t.Fatalf("token2 before the swap: %d", resp.StatusCode)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if resp, body := get(t, s.URL+"/v1/certificates/a.test", token1); resp.StatusCode != 200 {
					t.Errorf("kept token during the swap: %d %s", resp.StatusCode, body)
					return
				}
			}
		})
	}
	if err := h.SetTokens([]string{token1}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := h.SetTokens([]string{token1 + " names="}); err == nil {
		t.Error("SetTokens with a scope that does not parse = nil, want an error (and the tokens kept)")
	}
	if resp, _ := get(t, s.URL+"/v1/certificates/a.test", token2); resp.StatusCode != 401 {
		t.Errorf("removed token after SetTokens: %d, want 401", resp.StatusCode)
	}
}

// TestDuplicateToken: a token on two lines is refused in the file
// (naming both lines), and as two Handler.Tokens entries neither is
// accepted: which scope held would depend on the order, and commenting
// one line out would not revoke it.
func TestDuplicateToken(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(f, []byte(token1+" names=a.test\n"+token2+"\n\n"+token1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := certserver.LoadTokens(f); err == nil || !strings.Contains(err.Error(), "line 4: the same token as line 1") {
		t.Errorf("LoadTokens with a token on lines 1 and 4 = %v, want an error naming both", err)
	}
	s, _ := localServer(t, nil)
	h := s.Config.Handler.(*certserver.Handler)
	if err := h.SetTokens([]string{token2, token1 + " names=a.test", token1}); err == nil || !strings.Contains(err.Error(), "token 3: the same token as token 2") {
		t.Errorf("SetTokens with a token twice = %v, want an error naming both", err)
	}
	if resp, _ := get(t, s.URL+"/v1/certificates/a.test", token2); resp.StatusCode != 200 {
		t.Errorf("the tokens kept after the refused SetTokens: %d, want 200", resp.StatusCode)
	}
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	dup := httptest.NewServer(&certserver.Handler{Manager: m, Tokens: []string{token1 + " names=b.test", token2, token1}, Audit: slog.New(slog.DiscardHandler), Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(dup.Close)
	if resp, _ := get(t, dup.URL+"/v1/certificates/a.test", token1); resp.StatusCode != 401 {
		t.Errorf("a token given twice in Handler.Tokens: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get(t, dup.URL+"/v1/certificates/a.test", token2); resp.StatusCode != 200 {
		t.Errorf("the other token: %d, want 200", resp.StatusCode)
	}
}

// TestTokenFileBOM: a token file saved with a UTF-8 byte-order mark (as
// Windows editors do) has its first token work: before, the mark became
// part of that token, which then matched no request (401) while the
// reload reported it loaded (security trial). A mark elsewhere in a token
// is refused, naming the line, rather than silently disabling it.
func TestTokenFileBOM(t *testing.T) {
	s, _ := localServer(t, nil)
	h := s.Config.Handler.(*certserver.Handler)
	f := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(f, []byte("\ufeff"+token1+"\n"+token2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := certserver.LoadTokens(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SetTokens(tokens); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{token1, token2} {
		if resp, body := get(t, s.URL+"/v1/certificates/a.test", tok); resp.StatusCode != 200 {
			t.Errorf("token %q of a file starting with a BOM: %d %s", tok, resp.StatusCode, body)
		}
	}
	if err := os.WriteFile(f, []byte(token1+"\n\ufeff"+token2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := certserver.LoadTokens(f); err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "byte-order mark") {
		t.Errorf("LoadTokens with a BOM on line 2 = %v, want a refusal naming line 2 and the byte-order mark", err)
	}
}
