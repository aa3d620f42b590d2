//go:build unix

package serveloop

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestReload: SIGHUP calls the reload function while Wait waits.
func TestReload(t *testing.T) {
	// Catch SIGHUP here too, so that one sent before Wait listens cannot
	// end the test process.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)
	var reloads atomic.Int32
	l := New(slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard, nil, func() { reloads.Add(1) })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Wait(ctx)
	}()
	for i := 0; i < 100 && reloads.Load() == 0; i++ {
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if reloads.Load() == 0 {
		t.Error("SIGHUP did not call reload")
	}
}
