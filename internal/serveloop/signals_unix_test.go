//go:build unix

package serveloop

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"
)

// TestSignalBeforeWait: a SIGHUP that arrives after New but before Wait
// (between "listening" and the loop, which a test or an operator can hit
// right after start) is handled when Wait starts, not dropped: Go catches
// and ignores a signal nobody has asked for (CI lost a SIGUSR2 so, and the
// upgrade it asked for never happened).
func TestSignalBeforeWait(t *testing.T) {
	reloaded := make(chan struct{}, 1)
	l := New(slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard, nil, func() { reloaded <- struct{}{} })
	defer l.stopSignals()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // delivered before Wait
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		select {
		case <-reloaded:
		case <-time.After(5 * time.Second):
		}
		cancel()
	}()
	start := time.Now()
	if _, err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) >= 5*time.Second {
		t.Error("a SIGHUP sent before Wait was lost")
	}
}
