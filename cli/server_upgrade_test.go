//go:build unix

package cli

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestServerUpgradeAndReload: certkeeper server, like the proxy, hands its
// listener to a new binary on SIGUSR2 with no request failing under a
// steady stream of API calls, and SIGHUP applies a changed allowlist.
func TestServerUpgradeAndReload(t *testing.T) {
	dir, bin := copyBinary(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t))
	base := "http://" + addr
	cfgFile := filepath.Join(dir, "server.yaml")
	tokens, storageDir := writeTokens(t), t.TempDir()
	writeCfg := func(allow string) {
		t.Helper()
		cfg := fmt.Sprintf("listen: %s\ntoken_file: %s\nca: [local]\nstorage: %s\nallow: [%s]\naudit_log: %s\n",
			addr, tokens, storageDir, allow, filepath.Join(dir, "audit.log"))
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("a.test")
	p := startLogged(t, bin, "server listening", "server", "--config", cfgFile)
	if code, _, body := apiGet(t, base, "/v1/certificates/a.test", serverToken, nil); code != http.StatusOK {
		t.Fatalf("first request: %d %s", code, body)
	}

	// A steady stream of API calls, each on a new connection, 50 a second.
	var sent, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			sent.Add(1)
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/certificates/a.test", nil)
			req.Header.Set("Authorization", "Bearer "+serverToken)
			req.Close = true
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed.Add(1)
				lastErr.Store(err.Error())
			}
		}
	})
	time.Sleep(500 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	next := awaitHandOver(t, p.cmd, p.output, "server", 30*time.Second)
	time.Sleep(time.Second) // the new server alone
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || sent.Load() < 50 {
		t.Fatalf("%d of %d API calls during the upgrade failed (last: %v)", failed.Load(), sent.Load(), lastErr.Load())
	}
	t.Logf("%d API calls across the upgrade, none failed", sent.Load())

	// SIGHUP with b.test allowed: the successor applies it.
	if code, _, _ := apiGet(t, base, "/v1/certificates/b.test", serverToken, nil); code != http.StatusForbidden {
		t.Fatalf("b.test before it is allowed = %d, want 403", code)
	}
	writeCfg("a.test, b.test")
	if err := next.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, body := apiGet(t, base, "/v1/certificates/b.test", serverToken, nil)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b.test after SIGHUP = %d %s, want 200 within 10 s:\n%s", code, body, p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
