package certkeeper

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestLoadSeenCanceledQuiet: a Manager closed while it reads the stored
// last-seen times (a proxy stopped with Ctrl-C right after it started) logs
// no warning about it; every quick Ctrl-C printed "listing stored last-seen
// times; ...: context canceled", a failure that was none.
func TestLoadSeenCanceledQuiet(t *testing.T) {
	// The Manager's own start-up (the renewal scan) logs at Info from
	// another goroutine: only warnings count, and the buffer is locked.
	logs := &lockedBuffer{}
	m := &Manager{Storage: filestore.New(t.TempDir()),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if err := m.init(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m.loadSeen(ctx)
	if got := logs.String(); got != "" {
		t.Errorf("loadSeen with a canceled context logged:\n%s", got)
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
