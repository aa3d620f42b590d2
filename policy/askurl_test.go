package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// askServer is an ask endpoint on loopback. It answers each domain with
// the status in statuses (403 if absent), after waiting for release if
// that is set, and counts the requests.
type askServer struct {
	*httptest.Server
	requests atomic.Int64

	mu        sync.Mutex // guards lastQuery
	lastQuery string
}

func newAskServer(t *testing.T, statuses map[string]int, release chan struct{}) *askServer {
	t.Helper()
	s := &askServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		s.lastQuery = r.URL.RawQuery
		s.mu.Unlock()
		if release != nil {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		status, ok := statuses[r.URL.Query().Get("domain")]
		if !ok {
			status = http.StatusForbidden
		}
		w.WriteHeader(status)
		w.Write([]byte(strings.Repeat("x", 10<<10))) // more than maxAskBody
	}))
	t.Cleanup(s.Close)
	if release != nil {
		// Registered after Close, so it runs first: Close waits for
		// handlers.
		t.Cleanup(func() { close(release) })
	}
	return s
}

func (s *askServer) query() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastQuery
}

func TestAskURL(t *testing.T) {
	srv := newAskServer(t, map[string]int{
		"ok.test":       http.StatusOK,
		"*.ok.test":     http.StatusOK,
		"gone.test":     http.StatusNotFound,
		"broken.test":   http.StatusInternalServerError,
		"empty.test":    http.StatusNoContent,
		"moved.test":    http.StatusNotModified,
		"xn--n-nga1b.t": http.StatusOK,
	}, nil)
	a := &AskURL{URL: srv.URL + "/check?token=s3cr%2Bt"}
	tests := []struct {
		name   string
		status string // "" to allow; else the status the error must name
	}{
		{"ok.test", ""},
		{"*.ok.test", ""},
		{"xn--n-nga1b.t", ""},
		{"other.test", "403 Forbidden"},
		{"gone.test", "404 Not Found"},
		{"broken.test", "500 Internal Server Error"},
		{"empty.test", "204 No Content"},
		{"moved.test", "304 Not Modified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.Decide(t.Context(), tt.name)
			if tt.status == "" {
				if err != nil {
					t.Errorf("Decide(%q) = %v, want nil", tt.name, err)
				}
				return
			}
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			switch {
			case !errors.Is(err, ErrDenied):
				t.Errorf("Decide(%q) = %v, want ErrDenied", tt.name, err)
			case !strings.Contains(msg, tt.name) || !strings.Contains(msg, tt.status) ||
				!strings.Contains(msg, "ask "+srv.URL+"/check:"):
				t.Errorf("Decide(%q) = %v, want an error naming the name, %s/check and %q", tt.name, err, srv.URL, tt.status)
			case strings.Contains(msg, "s3cr"):
				t.Errorf("Decide(%q) = %v, want no query (it holds a token)", tt.name, err)
			}
		})
	}
}

func TestAskURLQuery(t *testing.T) {
	srv := newAskServer(t, map[string]int{"*.a.test": http.StatusOK}, nil)
	tests := []struct {
		name  string
		query string // appended to the server's URL
		want  string // the raw query the server must see
	}{
		{"no query", "/", "domain=%2A.a.test"},
		{"own query kept as is", "/check?token=a%2Bb&z=1", "token=a%2Bb&z=1&domain=%2A.a.test"},
		{"empty query", "/check?", "domain=%2A.a.test"},
		{"fragment dropped", "/check?k=v#frag", "k=v&domain=%2A.a.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &AskURL{URL: srv.URL + tt.query}
			if err := a.Decide(t.Context(), "*.a.test"); err != nil {
				t.Fatalf("Decide(%q) = %v, want nil", "*.a.test", err)
			}
			if got := srv.query(); got != tt.want {
				t.Errorf("URL %q: server saw query %q, want %q", tt.query, got, tt.want)
			}
		})
	}
}

func TestAskURLInvalid(t *testing.T) {
	srv := newAskServer(t, map[string]int{"a.test": http.StatusOK}, nil)
	tests := []struct {
		name, url, reason string
	}{
		{"empty", "", "empty"},
		{"relative", "/check", "not an absolute http or https URL"},
		{"other scheme", "ftp://127.0.0.1/check", "not an absolute http or https URL"},
		{"no host", "http:///check", "not an absolute http or https URL"},
		{"unparsable", "http://[::1/check?token=secret", "ask URL"},
		{"domain already there", srv.URL + "/check?domain=b.test&token=secret", "already has a domain parameter"},
		{"bad query", srv.URL + "/check?token=secret&a=%zz", "query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &AskURL{URL: tt.url}
			err := a.Decide(t.Context(), "a.test")
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("URL %q: Decide(%q) = %v, want ErrDenied saying %q", tt.url, "a.test", err, tt.reason)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("URL %q: Decide(%q) = %v, want no query in the error", tt.url, "a.test", err)
			}
		})
	}
	if n := srv.requests.Load(); n != 0 {
		t.Errorf("server got %d requests, want 0", n)
	}
}

func TestAskURLDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	a := &AskURL{URL: url + "/check?token=secret"}
	err := a.Decide(t.Context(), "a.test")
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "a.test") || strings.Contains(err.Error(), "secret") {
		t.Errorf("Decide(%q) with the endpoint down = %v, want ErrDenied naming the name, without the query", "a.test", err)
	}
}

func TestAskURLTimeout(t *testing.T) {
	srv := newAskServer(t, map[string]int{"a.test": http.StatusOK}, make(chan struct{}))
	a := &AskURL{URL: srv.URL, Timeout: 50 * time.Millisecond}
	start := time.Now()
	err := a.Decide(t.Context(), "a.test")
	if !errors.Is(err, ErrDenied) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("Decide(%q) with a hanging endpoint = %v, want ErrDenied and context.DeadlineExceeded, saying it had no answer within Timeout", "a.test", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Decide(%q) took %v, want about Timeout (50ms)", "a.test", d)
	}
}

func TestAskURLCache(t *testing.T) {
	srv := newAskServer(t, map[string]int{"ok.test": http.StatusOK}, nil)
	tests := []struct {
		name     string
		a        *AskURL
		domain   string
		requests int64 // after three questions
	}{
		{"allow cached", &AskURL{}, "ok.test", 1},
		{"deny cached", &AskURL{}, "no.test", 1},
		{"allow not cached", &AskURL{CacheTTL: -1}, "ok.test", 3},
		{"deny not cached", &AskURL{DenyTTL: -1}, "no.test", 3},
		{"deny TTL does not apply to allow", &AskURL{DenyTTL: -1}, "ok.test", 1},
		{"allow TTL does not apply to deny", &AskURL{CacheTTL: -1}, "no.test", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.URL = srv.URL
			before := srv.requests.Load()
			var errs [3]error
			for i := range errs {
				errs[i] = tt.a.Decide(t.Context(), tt.domain)
			}
			if got := srv.requests.Load() - before; got != tt.requests {
				t.Errorf("three questions about %q made %d requests, want %d", tt.domain, got, tt.requests)
			}
			for i, err := range errs {
				if err != errs[0] && (err == nil || errs[0] == nil || err.Error() != errs[0].Error()) {
					t.Errorf("answer %d = %v, answer 0 = %v: want the same", i, err, errs[0])
				}
			}
		})
	}
}

// TestAskURLCacheTTL checks when cached answers expire, on the cache
// itself with explicit times.
func TestAskURLCacheTTL(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	deny := fmt.Errorf("%w: no", ErrDenied)
	tests := []struct {
		name string
		a    *AskURL
		err  error
		ttl  time.Duration
	}{
		{"allow default", &AskURL{}, nil, time.Minute},
		{"deny default", &AskURL{}, deny, 10 * time.Second},
		{"allow set", &AskURL{CacheTTL: time.Hour, DenyTTL: time.Second}, nil, time.Hour},
		{"deny set", &AskURL{CacheTTL: time.Hour, DenyTTL: time.Second}, deny, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.store("a.test", tt.err, t0)
			ans, ok := tt.a.cached("a.test", t0.Add(tt.ttl-1))
			if !ok || ans.err != tt.err {
				t.Errorf("cached at t0+%v = %v, %v, want %v, true", tt.ttl-1, ans.err, ok, tt.err)
			}
			if _, ok := tt.a.cached("a.test", t0.Add(tt.ttl)); ok {
				t.Errorf("cached at t0+%v = true, want expired", tt.ttl)
			}
			if _, ok := tt.a.cached("a.test", t0); ok {
				t.Errorf("cached after expiry = true, want the entry dropped")
			}
		})
	}
}

func TestAskURLCacheBounded(t *testing.T) {
	srv := newAskServer(t, nil, nil)
	a := &AskURL{URL: srv.URL, CacheSize: 10}
	for i := range 100 {
		_ = a.Decide(t.Context(), fmt.Sprintf("n%d.test", i))
	}
	a.mu.Lock()
	n := a.cache.len()
	a.mu.Unlock()
	if n > 10 {
		t.Errorf("cache holds %d answers after 100 names, want at most CacheSize (10)", n)
	}
}

// TestAskURLConcurrent checks that 1000 simultaneous handshakes for one
// name make one request, and all get its answer.
func TestAskURLConcurrent(t *testing.T) {
	release := make(chan struct{})
	srv := newAskServer(t, map[string]int{"a.test": http.StatusOK}, nil)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // hold the first request until every caller has started
		srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer gate.Close()
	a := &AskURL{URL: gate.URL}

	const n = 1000
	var wg sync.WaitGroup
	var allowed atomic.Int64
	var started sync.WaitGroup
	started.Add(n)
	for range n {
		wg.Go(func() {
			started.Done()
			if err := a.Decide(t.Context(), "a.test"); err == nil {
				allowed.Add(1)
			} else {
				t.Errorf("Decide(%q) = %v, want nil", "a.test", err)
			}
		})
	}
	started.Wait()
	close(release)
	wg.Wait()
	if got := srv.requests.Load(); got != 1 {
		t.Errorf("%d concurrent questions made %d requests, want 1", n, got)
	}
	if got := allowed.Load(); got != n {
		t.Errorf("%d of %d callers allowed, want all", got, n)
	}
}

// TestAskURLCallerContext checks that a caller whose context ends stops
// waiting at once, with its context's error and not ErrDenied, while the
// request goes on and its answer serves the next caller.
func TestAskURLCallerContext(t *testing.T) {
	release := make(chan struct{})
	srv := newAskServer(t, map[string]int{"a.test": http.StatusOK}, nil)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer gate.Close()
	a := &AskURL{URL: gate.URL}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := a.Decide(ctx, "a.test")
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrDenied) {
		t.Errorf("Decide(%q) with a context that ends = %v, want context.DeadlineExceeded, not ErrDenied", "a.test", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Decide(%q) returned after %v, want soon after its context ended", "a.test", d)
	}
	close(release)
	if err := a.Decide(t.Context(), "a.test"); err != nil {
		t.Errorf("Decide(%q) after the endpoint answered = %v, want nil", "a.test", err)
	}
	if got := srv.requests.Load(); got != 1 {
		t.Errorf("made %d requests, want 1 (the abandoned one, then its cached answer)", got)
	}
}

func TestAskURLCachedAllocs(t *testing.T) {
	srv := newAskServer(t, map[string]int{"a.test": http.StatusOK}, nil)
	a := &AskURL{URL: srv.URL}
	ctx := t.Context()
	if err := a.Decide(ctx, "a.test"); err != nil {
		t.Fatalf("Decide(%q) = %v, want nil", "a.test", err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := a.Decide(ctx, "a.test"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("cached Decide(%q) allocates %v times, want 0", "a.test", allocs)
	}
}

// TestAskURLPasswordRedacted: a password in the ask URL never reaches an
// error, whatever characters it holds, percent-encoded or not.
func TestAskURLPasswordRedacted(t *testing.T) {
	for _, c := range strings.Split("/?#@:%", "") {
		raw := "http://user:Sup3r" + c + "Secr3t@127.0.0.1:1/ask?token=T0ken"
		err := (&AskURL{URL: raw, Timeout: 2 * time.Second}).Decide(t.Context(), "a.test")
		if err == nil {
			t.Fatalf("Decide with an unreachable ask URL = nil, want an error")
		}
		if msg := strings.ToLower(err.Error()); strings.Contains(msg, "sup3r") || strings.Contains(msg, "secr3t") || strings.Contains(msg, "%se") || strings.Contains(msg, "t0ken") {
			t.Errorf("password with %q: Decide error %q shows the password or the query", c, err)
		}
	}
}

// TestAskURLInFlightBounded: a flood of handshakes for distinct new names,
// each given up at once, sends at most MaxInFlight questions at a time;
// the names beyond are refused at once with ErrAskBusy and asked again at
// their next handshake (not cached). Before, a trial's flood had thousands
// of requests in flight and the proxy ran out of file descriptors.
func TestAskURLInFlightBounded(t *testing.T) {
	release := make(chan struct{})
	var inFlight, most atomic.Int64
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		if r.URL.Query().Get("domain") == "late.test" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	defer gate.Close()
	a := &AskURL{URL: gate.URL, MaxInFlight: 8}
	var busy atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond) // the client resets at once
			defer cancel()
			if err := a.Decide(ctx, fmt.Sprintf("n%d.flood.test", i)); errors.Is(err, ErrAskBusy) {
				if !errors.Is(err, ErrDenied) {
					t.Errorf("a busy refusal %v does not match ErrDenied", err)
				}
				busy.Add(1)
			}
		})
	}
	wg.Wait()
	if got := most.Load(); got > 8 {
		t.Errorf("%d questions in flight at once, want at most MaxInFlight (8)", got)
	}
	if got := busy.Load(); got < 150 {
		t.Errorf("%d of 200 names refused as busy, want the ones beyond the 8 in flight", got)
	}
	if err := a.Decide(t.Context(), "late.test"); !errors.Is(err, ErrAskBusy) {
		t.Errorf("Decide(late.test) while 8 questions wait = %v, want ErrAskBusy", err)
	}
	close(release)
	ok := false
	for end := time.Now().Add(5 * time.Second); !ok && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		ok = a.Decide(t.Context(), "late.test") == nil
	}
	if !ok {
		t.Error("late.test, refused as busy, is not asked again once the questions in flight end")
	}
}

// TestAskURLInFlightPerClient: one client's handshakes hold at most
// MaxInFlightPerClient of the questions in flight, so a flood from one
// address leaves the other slots to other clients (a trial's flood from one
// address refused every legitimate new name while it lasted); a question
// without a client counts against MaxInFlight alone, and a client's share
// comes back when its questions end.
func TestAskURLInFlightPerClient(t *testing.T) {
	release := make(chan struct{})
	var asked atomic.Int64
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer gate.Close()
	var once sync.Once
	stop := func() { once.Do(func() { close(release) }) }
	defer stop()
	a := &AskURL{URL: gate.URL, MaxInFlight: 16} // an eighth: 2 per client
	flooder := WithClient(t.Context(), netip.MustParseAddr("2001:db8::1"))
	sameNet := WithClient(t.Context(), netip.MustParseAddr("2001:db8::2:3")) // the same /64: one client
	other := WithClient(t.Context(), netip.MustParseAddr("192.0.2.7"))
	decide := func(ctx context.Context, name string) error {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond) // the client resets at once
		defer cancel()
		return a.Decide(ctx, name)
	}
	waitAsked := func(n int64) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); asked.Load() < n && time.Now().Before(end); time.Sleep(time.Millisecond) {
		}
		if got := asked.Load(); got != n {
			t.Fatalf("%d questions reached the ask endpoint, want %d", got, n)
		}
	}
	for i := range 2 {
		if err := decide(flooder, fmt.Sprintf("f%d.test", i)); errors.Is(err, ErrAskBusy) {
			t.Fatalf("the client's question %d refused as busy: %v", i+1, err)
		}
	}
	waitAsked(2)
	for _, ctx := range []context.Context{flooder, sameNet} {
		err := decide(ctx, "f9.test")
		if !errors.Is(err, ErrAskBusy) || !errors.Is(err, ErrDenied) {
			t.Fatalf("a third question from one client's /64 = %v, want ErrAskBusy", err)
		}
		if !strings.Contains(err.Error(), "2 questions for the handshakes of 2001:db8::") {
			t.Errorf("the refusal %q does not say the client's share is taken", err)
		}
	}
	if err := decide(other, "o.test"); errors.Is(err, ErrAskBusy) {
		t.Errorf("another client's question refused while one client holds its share: %v", err)
	}
	for i := range 12 {
		if err := decide(t.Context(), fmt.Sprintf("r%d.test", i)); errors.Is(err, ErrAskBusy) {
			t.Errorf("question %d without a client refused with 3 of 16 in flight: %v", i, err)
		}
	}
	waitAsked(15)
	if err := decide(other, "o2.test"); errors.Is(err, ErrAskBusy) {
		t.Errorf("the 16th question refused: %v", err)
	}
	waitAsked(16)
	if err := decide(t.Context(), "late.test"); !errors.Is(err, ErrAskBusy) || strings.Contains(err.Error(), "handshakes of") {
		t.Errorf("a 17th question = %v, want ErrAskBusy for MaxInFlight", err)
	}
	a.clientsMu.Lock()
	n := len(a.clients)
	a.clientsMu.Unlock()
	if n != 2 {
		t.Errorf("%d clients counted in flight, want 2", n)
	}
	stop()
	ok := false
	for end := time.Now().Add(5 * time.Second); !ok && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		ok = decide(flooder, "f10.test") == nil
	}
	if !ok {
		t.Error("the client's share does not come back once its questions end")
	}
}
