//go:build unix

package cli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestServerStopAbandonsIssuance: SIGTERM while a client waits for an
// issuance the CA holds up (paused at finalize): the drain waits its 10 s,
// says it reached its limit, abandons the issuance, the client gets a 503
// (not a cut connection), the issue lock is released (the next node takes
// it at once) and the exit status is 0, a stop that was asked for; before,
// "interrupted: context deadline exceeded", status 143, and the lock held
// for a lease (trial 11). Real Pebble behind the fault proxy.
func TestServerStopAbandonsIssuance(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	proxy := testca.NewFaultProxy(t, ca)
	dir := t.TempDir()
	args, base := pebbleServerArgs(ca, dir)
	args[1] = proxy.DirectoryURL() // --ca
	args = append(args, "--profile", "default", "--allow", "a.test", "--no-auth")
	p := startLogged(t, binary, "server listening", append([]string{"server"}, args...)...)
	proxy.PauseAt("finalize")
	defer proxy.Resume()
	status, body := make(chan int, 1), make(chan string, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Get(base + "/v1/certificates/a.test")
		if err != nil {
			status <- 0
			body <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status <- resp.StatusCode
		body <- string(b)
	}()
	if !within(30*time.Second, func() bool { return proxy.Count("finalize") > 0 }) {
		t.Fatal("the issuance never reached finalize")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0\n%s", err, p.output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM:\n%s", p.output())
	}
	if got, b := <-status, <-body; got != http.StatusServiceUnavailable || !strings.Contains(b, "yet: the server is stopping; retry later") {
		t.Errorf("the waiting client got %d %q, want 503 saying the server is stopping (0: the connection was cut)", got, b)
	}
	if !strings.Contains(p.output(), "drain limit (10 s) reached") {
		t.Errorf("the drain's end is not explained:\n%s", p.output())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	unlock, err := filestore.New(dir).Lock(ctx, storage.IssueLock("a.test"))
	if err != nil {
		t.Fatalf("the issue lock of a.test is held after the server stopped: %v", err)
	}
	unlock()
}
