package proxy_test

import (
	"net"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/proxy"
)

// TestDialBackend: a listening backend dials; a closed port does not, and
// the address it tried is returned either way; a bad URL is an error.
func TestDialBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	for _, backend := range []string{addr, "http://" + addr} {
		if got, err := proxy.DialBackend(t.Context(), backend, 5*time.Second); err != nil || got != addr {
			t.Errorf("DialBackend(%q) = %q, %v; want %s, nil", backend, got, err, addr)
		}
	}
	ln.Close()
	if got, err := proxy.DialBackend(t.Context(), "http://"+addr, 5*time.Second); err == nil || got != addr {
		t.Errorf("DialBackend to a closed port = %q, %v; want %s and an error", got, err, addr)
	}
	if got, _ := proxy.DialBackend(t.Context(), "https://127.0.0.1", time.Millisecond); got != "127.0.0.1:443" {
		t.Errorf("DialBackend(https://127.0.0.1) dialled %q, want 127.0.0.1:443", got)
	}
	if _, err := proxy.DialBackend(t.Context(), "ftp://x", time.Second); err == nil {
		t.Error("DialBackend(ftp://x) = nil error")
	}
}
