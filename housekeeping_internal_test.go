package certkeeper

import (
	"context"
	"log/slog"
	"testing"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestLoadSeenCanceledQuiet: a Manager closed while it reads the stored
// last-seen times (a proxy stopped with Ctrl-C right after it started) logs
// no warning about it; every quick Ctrl-C printed "listing stored last-seen
// times; ...: context canceled", a failure that was none.
func TestLoadSeenCanceledQuiet(t *testing.T) {
	m, logs := warnLogged(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m.loadSeen(ctx)
	if got := logs.String(); got != "" {
		t.Errorf("loadSeen with a canceled context logged:\n%s", got)
	}
}

// warnLogged starts a Manager on a new directory whose warnings and errors
// go to the returned buffer: its own start-up (the renewal scan) logs at
// Info from another goroutine, so only warnings count, and the buffer is
// locked. It is closed when the test ends.
func warnLogged(t *testing.T) (*Manager, *testsvc.Buffer) {
	t.Helper()
	logs := &testsvc.Buffer{}
	m := &Manager{Storage: filestore.New(t.TempDir()),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if err := m.init(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, logs
}
