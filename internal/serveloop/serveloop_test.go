package serveloop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeAndDrain: Wait returns when ctx ends, and Drain stops the
// servers gracefully, saying so.
func TestServeAndDrain(t *testing.T) {
	var notes bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(io.Discard, nil)), &notes, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	l.Serve(srv, func() error { return srv.Serve(ln) })
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if failed, err := l.Wait(ctx); failed || err != nil {
		t.Errorf("Wait = %v, %v; want false, nil after the context ended", failed, err)
	}
	if err := l.Drain(5*time.Second, nil); err != nil {
		t.Errorf("Drain = %v", err)
	}
	if err := <-l.Results(); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want http.ErrServerClosed", err)
	}
	if !strings.Contains(notes.String(), "certkeeper: draining connections (at most 5 s)") {
		t.Errorf("notes %q lack the draining line", notes.String())
	}
}

// TestServerFails: a server whose Serve returns ends Wait with its error.
func TestServerFails(t *testing.T) {
	l := New(slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard, nil, nil)
	boom := errors.New("boom")
	l.Serve(&http.Server{}, func() error { return boom })
	if failed, err := l.Wait(t.Context()); !failed || !errors.Is(err, boom) {
		t.Errorf("Wait = %v, %v; want true, boom", failed, err)
	}
}

// TestDrainLimitAbandons: a request still waiting at the drain's limit
// gets what it waits for abandoned (the handler answers 503) rather than
// its connection cut, the limit is said, and the drain is no error; a
// handler that never returns is closed after the grace.
func TestDrainLimitAbandons(t *testing.T) {
	var notes bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(io.Discard, nil)), &notes, nil, nil)
	abandoned := make(chan struct{})
	started := make(chan struct{}, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-abandoned // an issuance in flight
		http.Error(w, "no certificate yet", http.StatusServiceUnavailable)
	})}
	l.Serve(srv, func() error { return srv.Serve(ln) })
	status := make(chan int, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + ln.Addr().String())
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	<-started
	start := time.Now()
	if err := l.Drain(200*time.Millisecond, func() { close(abandoned) }); err != nil {
		t.Errorf("Drain = %v, want nil (a stop that was asked for)", err)
	}
	if got := <-status; got != http.StatusServiceUnavailable {
		t.Errorf("the waiting request got %d, want 503 (0: cut)", got)
	}
	if took := time.Since(start); took > abandonGrace {
		t.Errorf("Drain took %s", took)
	}
	if !strings.Contains(notes.String(), "drain limit (0 s) reached with connections open") {
		t.Errorf("notes %q do not say the limit was reached", notes.String())
	}
}
