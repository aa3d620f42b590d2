package certserver_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestAuditWriter: every line written by concurrent writers arrives whole
// and exactly once by Close.
func TestAuditWriter(t *testing.T) {
	var out testsvc.Buffer
	a := certserver.NewAuditWriter(&out, nil)
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
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
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

// flakyWriter fails its writes with "disk full" while failing is set.
type flakyWriter struct {
	failing atomic.Bool
	out     testsvc.Buffer
}

func (f *flakyWriter) Write(p []byte) (int, error) {
	if f.failing.Load() {
		return 0, errors.New("disk full")
	}
	return f.out.Write(p)
}

// TestAuditWriterError: a failed write is logged when it happens (not at
// Close), Err reports it, and the lines are kept and retried: once the
// writer works again they are written, once each, and Err is nil.
func TestAuditWriterError(t *testing.T) {
	var log testsvc.Buffer
	f := &flakyWriter{}
	f.failing.Store(true)
	a := certserver.NewAuditWriter(f, slog.New(slog.NewTextHandler(&log, nil)))
	defer a.Close()
	if _, err := a.Write([]byte("one\n")); err != nil {
		t.Fatalf("first Write = %v; the error comes from the background write", err)
	}
	if err := a.Sync(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Sync = %v, want the write error", err)
	}
	if err := a.Err(); err == nil {
		t.Error("Err = nil while writes fail")
	}
	if l := log.String(); !strings.Contains(l, "writing the audit log failed") || !strings.Contains(l, "disk full") {
		t.Errorf("log after the failed write: %q; want the error, logged when it happened", l)
	}
	if _, err := a.Write([]byte("two\n")); err != nil {
		t.Fatal(err)
	}
	f.failing.Store(false)
	for deadline := time.Now().Add(5 * time.Second); a.Err() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Err still set 5 s after the writer works again")
		}
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := f.out.String(); got != "one\ntwo\n" {
		t.Errorf("written %q, want both lines once, in order", got)
	}
	if !strings.Contains(log.String(), "the audit log is written again") {
		t.Errorf("log: %q; want the recovery", log.String())
	}
}

// blockingWriter blocks every write until release is closed.
type blockingWriter struct {
	release chan struct{}
	out     testsvc.Buffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.out.Write(p)
}

// TestAuditWriterBacklog: while the writer is stuck the backlog stays
// bounded: Write refuses lines beyond DefaultAuditBacklog and Err says
// so; once the writer moves, every accepted line is written and Err is
// nil again.
func TestAuditWriterBacklog(t *testing.T) {
	b := &blockingWriter{release: make(chan struct{})}
	a := certserver.NewAuditWriter(b, slog.New(slog.DiscardHandler))
	line := []byte(strings.Repeat("x", 99) + "\n")
	accepted := 0
	for i := 0; ; i++ {
		if _, err := a.Write(line); err != nil {
			if !errors.Is(err, certserver.ErrAuditBacklog) {
				t.Fatalf("Write = %v, want ErrAuditBacklog", err)
			}
			break
		}
		accepted++
		if i > 2*certserver.DefaultAuditBacklog/len(line) {
			t.Fatalf("%d lines accepted while the writer is stuck: the backlog is not bounded", accepted)
		}
	}
	if !errors.Is(a.Err(), certserver.ErrAuditBacklog) {
		t.Errorf("Err = %v with the backlog full, want ErrAuditBacklog", a.Err())
	}
	close(b.release)
	for deadline := time.Now().Add(5 * time.Second); a.Err() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Err still set 5 s after the writer moved")
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(b.out.String(), "\n"); got != accepted {
		t.Errorf("%d lines written, want the %d accepted", got, accepted)
	}
}

// TestHandlerAuditFailClosed: while the audit log cannot be written, key
// fetches get 503 with Retry-After (a staple, which holds no key, is
// still answered); once it can, keys are handed out again and recorded.
func TestHandlerAuditFailClosed(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	f := &flakyWriter{}
	f.failing.Store(true)
	aw := certserver.NewAuditWriter(f, slog.New(slog.DiscardHandler))
	defer aw.Close()
	h := &certserver.Handler{Manager: m, Tokens: []string{token1}, Audit: slog.New(slog.NewJSONHandler(aw, nil)), AuditErr: aw.Err}
	s := httptest.NewServer(h)
	defer s.Close()

	fmt.Fprintln(aw, `{"msg":"audit log opened"}`)
	if err := aw.Sync(); err == nil {
		t.Fatal("Sync = nil with a failing writer")
	}
	resp, body := get(t, s.URL+"/v1/certificates/a.test", token1)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || strings.Contains(string(body), "PRIVATE KEY") {
		t.Errorf("key fetch while the audit log fails = %d (Retry-After %q) %.100s; want 503 with Retry-After, no key", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, _ := get(t, s.URL+"/v1/ocsp/a.test", token1); resp.StatusCode != http.StatusNotFound {
		t.Errorf("staple fetch while the audit log fails = %d, want 404 (no staple; not refused)", resp.StatusCode)
	}
	f.failing.Store(false)
	for deadline := time.Now().Add(5 * time.Second); aw.Err() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the audit writer did not recover within 5 s")
		}
	}
	if resp, body := get(t, s.URL+"/v1/certificates/a.test", token1); resp.StatusCode != http.StatusOK {
		t.Fatalf("key fetch after recovery = %d %s, want 200", resp.StatusCode, body)
	}
	if err := aw.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := f.out.String(); !strings.Contains(got, "audit log opened") || !strings.Contains(got, `"msg":"key handed out"`) {
		t.Errorf("audit log after recovery:\n%s\nwant the line kept through the failure and the hand-out", got)
	}
}
