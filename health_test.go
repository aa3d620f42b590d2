package certkeeper_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// hangingStorage is a storage whose health probe hangs until release is
// closed, as a file system on a server that went away does.
type hangingStorage struct {
	storage.Storage
	release chan struct{}
	probes  atomic.Int64
}

func (h *hangingStorage) CheckHealth(ctx context.Context) error {
	h.probes.Add(1)
	<-h.release // as a file system call would, it does not heed ctx
	return nil
}

// TestHealthNotAnswering: a probe that hangs fails the check after
// Timeout with "storage: not answering"; checks meanwhile return at once
// and start no other probe, and once it answers the check passes again.
func TestHealthNotAnswering(t *testing.T) {
	st := &hangingStorage{release: make(chan struct{})}
	h := &certkeeper.Health{Storage: st, Every: 50 * time.Millisecond, Timeout: 200 * time.Millisecond}
	start := time.Now()
	err := h.Check(t.Context())
	var he *certkeeper.HealthError
	if !errors.As(err, &he) || he.Reason != "storage: not answering" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Check with a hanging probe = %v, want a *HealthError, storage: not answering", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("Check took %v, want about the Timeout, 200ms", d)
	}
	var wg sync.WaitGroup
	start = time.Now()
	for range 200 {
		wg.Go(func() {
			if err := h.Check(t.Context()); err == nil {
				t.Error("Check passed while the probe hangs")
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("200 checks while the probe hangs took %v: they waited for it", d)
	}
	if n := st.probes.Load(); n != 1 {
		t.Errorf("%d probes started, want 1: none while one hangs", n)
	}
	close(st.release)
	deadline := time.Now().Add(5 * time.Second)
	for h.Check(t.Context()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Check still fails after the probe answered: %v", h.Check(t.Context()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHealthServeHTTP: GET and HEAD are answered, other methods get 405.
func TestHealthServeHTTP(t *testing.T) {
	h := &certkeeper.Health{Storage: filestore.New(t.TempDir())}
	for method, want := range map[string]int{"GET": 200, "HEAD": 200, "POST": 405, "DELETE": 405} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, "/healthz", nil))
		if w.Code != want {
			t.Errorf("%s /healthz: %d, want %d", method, w.Code, want)
		}
		if method == "GET" && w.Body.String() != "ok\n" {
			t.Errorf("GET /healthz: %q, want ok", w.Body.String())
		}
	}
}

// healthz GETs url and returns the status code and body.
func healthz(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// flood asks url n times, 20 at a time, and fails the test on an answer
// other than want.
func flood(t *testing.T, url string, n, want int) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s: %d, want %d", url, resp.StatusCode, want)
			}
		})
	}
	wg.Wait()
}

// waitHealthz asks url until it answers code with a body containing
// want, for up to 10 s.
func waitHealthz(t *testing.T, url string, code int, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, body := healthz(t, url)
		if c == code && strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %q, want %d %q", url, c, body, code, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
