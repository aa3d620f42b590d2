package certserver_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/certkeeper/certkeeper/certserver"
)

// TestLoadTokensMode: a token file group or others may read or write is
// refused with its mode and the fix; a 0600 one is read.
func TestLoadTokensMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no group and other permission bits")
	}
	f := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(f, []byte(token1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tokens, err := certserver.LoadTokens(f); err != nil || len(tokens) != 1 {
		t.Fatalf("LoadTokens(0600 file) = %v, %v", tokens, err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620, 0o666} {
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
