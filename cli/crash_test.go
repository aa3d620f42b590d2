package cli

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/storage"
)

// TestProxyRestartAfterKill: a proxy on file storage is killed with SIGKILL
// while it holds the issue locks of 20 names (the CA has signed their
// certificates, and the proxy waits for the finalize replies), and
// restarted at once on the same storage with the CA healthy again. Every
// name must be served on its first handshake, well within the 30 s lease
// the dead process's locks would otherwise keep: a successor on the same
// host takes over the locks of a holder that is gone. And no certificate
// is ordered twice: the restarted proxy takes each from the order the
// dead one left (a crash loop would otherwise spend the CA's limit of
// duplicate certificates).
func TestProxyRestartAfterKill(t *testing.T) {
	const (
		n = 20
		// handshakeTimeout bounds each handshake after the restart: well
		// under the default lease (30 s), well over an issuance by Pebble.
		handshakeTimeout = 10 * time.Second
	)
	ca := testca.Start(t, testca.Options{})
	fp := testca.NewFaultProxy(t, ca)
	roots := ca.IssuingRootPool(t)
	storageDir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(ca.TLSPort())
	args := []string{
		"--tls-addr", addr, "--backend", newBackend(t, "hello").url,
		"--allow", "*.crash.test", "--ca", fp.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(),
		"--profile", "default", "--storage", storageDir,
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d.crash.test", i)
	}
	handshake := func(name string, timeout time.Duration) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr,
			&tls.Config{ServerName: name, RootCAs: roots})
		if err != nil {
			return err
		}
		return conn.Close()
	}

	fp.PauseAfter("finalize")
	first := startProxyLogged(t, args...)
	for _, name := range names {
		go handshake(name, time.Minute) // fails when the proxy is killed
	}
	// Every certificate has been signed and its reply is held: the proxy
	// holds every name's issue lock.
	waitFor(t, time.Minute, fmt.Sprintf("%d finalize replies", n), func() bool { return fp.Held() >= n })
	for _, name := range names {
		dir := filepath.Join(storageDir, ".locks", "issue%2F"+name)
		if leases, _ := filepath.Glob(filepath.Join(dir, "*.lease")); len(leases) != 1 {
			t.Fatalf("%s: %d lease files in %s, want the one of the proxy at finalize", storage.IssueLock(name), len(leases), dir)
		}
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait() // reaped, as by the service manager that restarts it
	fp.Resume()

	restarted := time.Now()
	startProxyLogged(t, args...)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = handshake(name, handshakeTimeout)
		}()
	}
	wg.Wait()
	took := time.Since(restarted)
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("first handshake for %s after the restart: %v", names[i], err)
		}
	}
	t.Logf("restart after SIGKILL: %d of %d names served on the first handshake within %v of the restart",
		n-failed, n, took.Round(time.Millisecond))
	if failed == 0 && took > 15*time.Second {
		t.Errorf("serving %d names after the restart took %v, want well under the 30 s lease", n, took)
	}
	if orders := fp.Count("new-order"); orders != n {
		t.Errorf("%d orders for %d names: the restarted proxy ordered certificates the CA had signed", orders, n)
	}
}
