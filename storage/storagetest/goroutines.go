package storagetest

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// Goroutines counts this process's goroutines whose stack contains frame,
// e.g. "filestore.(*lease).renew(": backends use it to prove that every
// lock's renewal goroutine ends.
func Goroutines(frame string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte(frame))
}

// WaitGoroutines waits (at most 5 s) until Goroutines(frame) is want: a
// goroutine just started, or just ending, may not show in a stack dump yet.
func WaitGoroutines(t testing.TB, frame string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for Goroutines(frame) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines in %s, want %d", Goroutines(frame), frame, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
