//go:build unix

package cli

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// writeFileAtomic replaces file with data (mode 0600) in one rename, as
// an operator's editor or config management would: a reload never reads
// half a file.
func writeFileAtomic(t *testing.T, file, data string) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// TestServerTokenFileMode: a token file others may read, or its group
// change, is refused at start, naming its mode and the fix. (One its own
// group may read is accepted: TestLoadTokensMode.)
func TestServerTokenFileMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o660, 0o604} {
		f := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(f, []byte(serverToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
		r := ck(t, 10*time.Second, "server", "--ca", "local", "--storage", t.TempDir(), "--listen", "127.0.0.1:0", "--token-file", f)
		want := fmt.Sprintf("%04o", mode)
		if r.code == 0 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "chmod 600") || strings.Contains(r.stderr, "server listening") {
			t.Errorf("token file mode %04o: exit %d, stderr %q; want a refusal naming %s and chmod 600", mode, r.code, r.stderr, want)
		}
	}
}

// TestServerTokenReload: SIGHUP reloads the token file. A token removed
// from it gets 401 after the reload while the tokens kept serve every
// request sent concurrently through the reload; a reload that finds the
// file readable by others keeps the tokens it has.
func TestServerTokenReload(t *testing.T) {
	const leaked = "leaked-token-0123456789abcdef"
	listen := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	base := "http://" + listen
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFileAtomic(t, tokens, leaked+"\n"+serverToken+"\n")
	p := startLogged(t, binary, "server listening", "server", "--ca", "local", "--storage", t.TempDir(), "--listen", listen,
		"--token-file", tokens, "--allow", "a.test", "--audit-log", filepath.Join(t.TempDir(), "audit.log"))
	for _, tok := range []string{leaked, serverToken} {
		if code, _, body := apiGet(t, base, "/v1/certificates/a.test", tok, nil); code != http.StatusOK {
			t.Fatalf("before the reload: %d %s", code, body)
		}
	}

	// Clients with the kept token, four at a time, through the reload.
	var sent, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				req, _ := http.NewRequest(http.MethodGet, base+"/v1/certificates/a.test", nil)
				req.Header.Set("Authorization", "Bearer "+serverToken)
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	writeFileAtomic(t, tokens, "# "+"revoked: line 1 was the leaked token\n"+serverToken+"\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	revoked := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, _, _ := apiGet(t, base, "/v1/certificates/a.test", leaked, nil); code == http.StatusUnauthorized {
			revoked = true
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if !revoked {
		t.Errorf("the removed token still fetches keys 5 s after SIGHUP:\n%s", p.output())
	}
	// No --config: the log says what SIGHUP read again (it said the
	// policy changed).
	if out := p.output(); !strings.Contains(out, "only the token file is read again") || strings.Contains(out, "policy changed") {
		t.Errorf("SIGHUP without --config should log that only the token file is read again:\n%s", out)
	}
	if failed.Load() != 0 || sent.Load() < 10 {
		t.Errorf("%d of %d requests with the kept token failed through the reload (last: %v)", failed.Load(), sent.Load(), lastErr.Load())
	}
	t.Logf("%d requests with the kept token through the reload, none failed", sent.Load())

	// A reload that finds the file readable by others keeps the old tokens.
	writeFileAtomic(t, tokens, leaked+"\n"+serverToken+"\n")
	if err := os.Chmod(tokens, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.output(), "chmod 600"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal of the 0644 token file in the log within 5 s of SIGHUP:\n%s", p.output())
		}
	}
	if code, _, _ := apiGet(t, base, "/v1/certificates/a.test", leaked, nil); code != http.StatusUnauthorized {
		t.Errorf("after a refused reload the revoked token gets %d, want 401", code)
	}
	if code, _, _ := apiGet(t, base, "/v1/certificates/a.test", serverToken, nil); code != http.StatusOK {
		t.Errorf("after a refused reload the kept token gets %d, want 200", code)
	}
}

// TestServerAPICertReload: SIGHUP reads the --api-cert files again. A key
// that does not match the new certificate (written one file before the
// other) keeps the certificate served and logs why; once both are
// written, the next SIGHUP serves the new one to new connections.
func TestServerAPICertReload(t *testing.T) {
	dir := t.TempDir()
	selfSigned := func(name string) (cert, key string) {
		cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		if r := ck(t, 30*time.Second, "selfsigned", "-d", "127.0.0.1", "--cert-out", cert, "--key-out", key); r.code != 0 {
			t.Fatalf("selfsigned: exit %d %s", r.code, r.stderr)
		}
		return cert, key
	}
	apiCert, apiKey := selfSigned("api")
	newCert, newKey := selfSigned("new")
	tokens := filepath.Join(dir, "tokens")
	writeFileAtomic(t, tokens, serverToken+"\n")
	listen := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	p := startLogged(t, binary, "server listening", "server", "--ca", "local", "--storage", t.TempDir(), "--listen", listen,
		"--token-file", tokens, "--allow", "a.test", "--api-cert", apiCert+":"+apiKey)
	served := func() []byte {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", listen, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	der := func(file string) []byte {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(data)
		return b.Bytes
	}
	first := der(apiCert)
	if !bytes.Equal(served(), first) {
		t.Fatal("the API does not serve --api-cert")
	}
	hup := func(logged string) {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the log line "+logged, func() bool { return strings.Contains(p.output(), logged) })
	}

	// The new certificate, its key not yet written: still the old one.
	if err := os.Rename(newCert, apiCert); err != nil {
		t.Fatal(err)
	}
	hup("reading the API's certificate files again failed; it serves the certificate it had")
	if !bytes.Equal(served(), first) {
		t.Fatal("after a SIGHUP that read a certificate without its key, the API does not serve the one it had")
	}
	if err := os.Rename(newKey, apiKey); err != nil {
		t.Fatal(err)
	}
	hup("the API's certificate files were read again: new connections get the new certificate")
	if !bytes.Equal(served(), der(apiCert)) {
		t.Errorf("after SIGHUP the API does not serve the new --api-cert")
	}
}
