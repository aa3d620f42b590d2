package statuspage

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/certkeeper/certkeeper/internal/statusfill"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// slowList is a storage whose List of the certificates takes delay.
type slowList struct {
	storage.Storage
	delay time.Duration
}

func (s slowList) List(ctx context.Context, prefix string) ([]string, error) {
	time.Sleep(s.delay)
	return s.Storage.List(ctx, prefix)
}

// TestReadDropped: a read kept for reuse is dropped when its window ends,
// with no request to replace it: the list of every stored certificate
// (44 MB at 100,000) is not held from one view to the next, however far
// apart; a quick read is not kept at all.
func TestReadDropped(t *testing.T) {
	dir := t.TempDir()
	if err := statusfill.Fill(dir, 5, nil, ""); err != nil {
		t.Fatal(err)
	}
	held := func(h *Handler) bool {
		h.reads.mu.Lock()
		defer h.reads.mu.Unlock()
		return h.reads.last != nil
	}
	synctest.Test(t, func(t *testing.T) {
		h := &Handler{Storage: slowList{filestore.New(dir), time.Second}}
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		if !held(h) {
			t.Fatal("a read of 1 s is not kept for reuse")
		}
		time.Sleep(minReuse + time.Second)
		synctest.Wait()
		if held(h) {
			t.Errorf("a read is still held %v after its window ended", time.Second)
		}
		q := &Handler{Storage: slowList{filestore.New(dir), 10 * time.Millisecond}}
		q.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		if held(q) {
			t.Error("a quick read is kept")
		}
	})
}
