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
	if err := l.Drain(5 * time.Second); err != nil {
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
