package certkeeper

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestLoadSeenCanceledQuiet: a Manager closed while it reads the stored
// last-seen times (a proxy stopped with Ctrl-C right after it started) logs
// no warning about it; every quick Ctrl-C printed "listing stored last-seen
// times; ...: context canceled", a failure that was none.
func TestLoadSeenCanceledQuiet(t *testing.T) {
	var logs bytes.Buffer
	m := &Manager{Storage: filestore.New(t.TempDir()), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := m.init(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m.loadSeen(ctx)
	if logs.Len() != 0 {
		t.Errorf("loadSeen with a canceled context logged:\n%s", logs.String())
	}
}
