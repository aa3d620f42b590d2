package certserver_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/certkeeper/certkeeper/certserver"
)

// lockedBuffer is a bytes.Buffer safe for the writer's goroutine and the
// test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestAuditWriter: every line written by concurrent writers arrives whole
// and exactly once by Close.
func TestAuditWriter(t *testing.T) {
	var out lockedBuffer
	a := certserver.NewAuditWriter(&out)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				if _, err := fmt.Fprintf(a, "writer %d line %d\n", w, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.b.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	seen := map[string]bool{}
	for _, l := range got {
		if seen[l] || !strings.HasPrefix(l, "writer ") {
			t.Fatalf("line %q repeated or torn", l)
		}
		seen[l] = true
	}
	if _, err := a.Write([]byte("late\n")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestAuditWriterError: a failed write is reported by later writes and
// by Close.
func TestAuditWriterError(t *testing.T) {
	a := certserver.NewAuditWriter(failingWriter{})
	if _, err := a.Write([]byte("one\n")); err != nil {
		t.Fatalf("first Write = %v; the error comes from the background write", err)
	}
	if err := a.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close = %v, want the write error", err)
	}
}
