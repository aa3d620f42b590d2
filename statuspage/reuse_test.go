package statuspage_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/statusfill"
	"github.com/certkeeper/certkeeper/statuspage"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// countingStore counts the walks of the certificates (List of the
// certificate prefix, which status.Walk makes once per read), each of
// which takes delay.
type countingStore struct {
	storage.Storage
	delay time.Duration
	walks atomic.Int32
}

func (s *countingStore) List(ctx context.Context, prefix string) ([]string, error) {
	if prefix == storage.CertificatePrefix("") {
		s.walks.Add(1)
		time.Sleep(s.delay)
	}
	return s.Storage.List(ctx, prefix)
}

// filled returns a filestore directory holding n certificates.
func filled(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	if err := statusfill.Fill(dir, n, nil, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serve returns the body of GET path from h, failing unless it is 200.
func serve(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// TestConcurrentRequestsShareOneRead: requests that come while the
// storage is being read (four browser tabs, a script polling
// /status.json) wait for that read rather than each start one: at
// 100,000 certificates four views took 32 s of CPU and 240 MB more.
func TestConcurrentRequestsShareOneRead(t *testing.T) {
	dir := filled(t, 20)
	synctest.Test(t, func(t *testing.T) {
		st := &countingStore{Storage: filestore.New(dir), delay: time.Second}
		h := &statuspage.Handler{Storage: st}
		var wg sync.WaitGroup
		for _, path := range []string{"/", "/?page=2", "/?state=failing", "/status.json", "/"} {
			wg.Go(func() { serve(t, h, path) })
		}
		wg.Wait()
		if n := st.walks.Load(); n != 1 {
			t.Errorf("5 concurrent requests read the storage %d times, want once", n)
		}
	})
}

// TestReadReused: a read that took long is reused for max(10 s, 5× its
// duration), and the page says how old it is; a quick one (a small
// store) is not reused at all; a change recorded by the Recorder ends
// the reuse once the read is as old as it took.
func TestReadReused(t *testing.T) {
	dir := filled(t, 5)
	for _, tc := range []struct {
		name  string
		delay time.Duration // how long a read takes
		reuse time.Duration // how long it is reused, 0 for not at all
	}{
		{"quick", 100 * time.Millisecond, 0},
		{"slow", time.Second, 10 * time.Second},
		{"slower", 4 * time.Second, 20 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := &countingStore{Storage: filestore.New(dir), delay: tc.delay}
				h := &statuspage.Handler{Storage: st}
				serve(t, h, "/")
				if tc.reuse == 0 {
					serve(t, h, "/status.json")
					if n := st.walks.Load(); n != 2 {
						t.Errorf("a read of %v was reused: %d reads for 2 requests", tc.delay, n)
					}
					return
				}
				time.Sleep(tc.reuse - time.Second)
				body := serve(t, h, "/?page=1")
				serve(t, h, "/status.json")
				if n := st.walks.Load(); n != 1 {
					t.Errorf("a read of %v was not reused %v later: %d reads", tc.delay, tc.reuse-time.Second, n)
				}
				if want := "(read " + (tc.reuse - time.Second).String() + " ago; a read of the storage serves " + tc.reuse.String() + ")"; !strings.Contains(body, want) {
					t.Errorf("the page served from a reused read does not say %q", want)
				}
				time.Sleep(time.Second)
				if body := serve(t, h, "/"); strings.Contains(body, "ago; a read") {
					t.Error("a fresh read is said to be reused")
				}
				if n := st.walks.Load(); n != 2 {
					t.Errorf("a read of %v was reused %v later: %d reads, want 2", tc.delay, tc.reuse, n)
				}
			})
		})
	}
	t.Run("changed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := &countingStore{Storage: filestore.New(dir), delay: 2 * time.Second}
			var rec statuspage.Recorder
			h := &statuspage.Handler{Storage: st, Events: &rec}
			serve(t, h, "/")
			rec.Observe(certkeeper.Event{Kind: certkeeper.Denied, Names: []string{"x.test"}}) // changes nothing stored
			time.Sleep(3 * time.Second)
			serve(t, h, "/")
			if n := st.walks.Load(); n != 1 {
				t.Errorf("a denial ended the reuse: %d reads, want 1", n)
			}
			rec.Observe(certkeeper.Event{Kind: certkeeper.Obtained, Names: []string{"new.test"}})
			serve(t, h, "/")
			if n := st.walks.Load(); n != 2 {
				t.Errorf("a certificate obtained did not end the reuse of a read %v old: %d reads, want 2", 3*time.Second, n)
			}
			rec.Observe(certkeeper.Event{Kind: certkeeper.Renewed, Names: []string{"new.test"}})
			time.Sleep(time.Second)
			serve(t, h, "/")
			if n := st.walks.Load(); n != 2 {
				t.Errorf("a change ended the reuse of a read younger than it took (2 s): %d reads, want 2", n)
			}
		})
	})
}

// blockedStore is a storage whose walk of the certificates waits for
// release (or its context), telling entered when it begins.
type blockedStore struct {
	storage.Storage
	entered chan struct{}
	release chan struct{}
}

func (s *blockedStore) List(ctx context.Context, prefix string) ([]string, error) {
	if prefix == storage.CertificatePrefix("") {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Storage.List(ctx, prefix)
}

// records is a slog.Handler that keeps what is logged.
type records struct {
	mu   sync.Mutex
	logs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// TestClientGoneIsNotAnError: a client that leaves while the storage is
// read (a closed tab, a timed-out poll) is not logged as an error
// ("reading certificate status" err="context canceled" at ERROR in the
// scale trial); the read goes on for the requests that come next.
func TestClientGoneIsNotAnError(t *testing.T) {
	dir := filled(t, 3)
	for _, path := range []string{"/", "/status.json"} {
		t.Run(path, func(t *testing.T) {
			st := &blockedStore{Storage: filestore.New(dir), entered: make(chan struct{}, 1), release: make(chan struct{})}
			logs := &records{}
			h := &statuspage.Handler{Storage: st, Logger: slog.New(logs)}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil).WithContext(ctx))
			}()
			<-st.entered
			cancel()
			<-done
			close(st.release)
			serve(t, h, path) // the read went on, and serves the next request
			logs.mu.Lock()
			defer logs.mu.Unlock()
			for _, r := range logs.logs {
				if r.Level > slog.LevelDebug {
					t.Errorf("a client gone is logged at %v: %s", r.Level, r.Message)
				}
			}
		})
	}
}

// TestNoneInState: ?state=failing when nothing is failing says so, and
// how many certificates there are, rather than "No certificates yet."
// (the scale trial's 100,000 fine certificates); an empty store still
// says "No certificates yet.".
func TestNoneInState(t *testing.T) {
	body := serve(t, &statuspage.Handler{Storage: filestore.New(filled(t, 1000))}, "/?state=failing")
	if want := "No certificate is failing (1,000 certificates in all)."; !strings.Contains(body, want) || strings.Contains(body, "No certificates yet") {
		t.Errorf("?state=failing with 1,000 fine certificates does not say %q:\n%s", want, body)
	}
	for _, path := range []string{"/", "/?state=failing"} {
		if body := serve(t, &statuspage.Handler{Storage: filestore.New(t.TempDir())}, path); !strings.Contains(body, "No certificates yet.") {
			t.Errorf("GET %s of an empty store does not say \"No certificates yet.\":\n%s", path, body)
		}
	}
}
