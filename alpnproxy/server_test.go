package alpnproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

const testReadTimeout = 300 * time.Millisecond

// echoBackend is a backend that, on each connection, writes its name and a
// newline, then echoes every byte it receives, and half-closes when the
// client does.
func echoBackend(t *testing.T, name string) string {
	t.Helper()
	return serveBackend(t, func(c net.Conn) {
		if _, err := io.WriteString(c, name+"\n"); err != nil {
			return
		}
		if _, err := io.Copy(c, c); err == nil {
			c.(*net.TCPConn).CloseWrite()
		}
		io.Copy(io.Discard, c)
	})
}

// startServer runs s on a loopback listener and returns its address; the
// cleanup shuts it down and checks Serve's result.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func newTestServer(t *testing.T) (*Server, string) {
	t.Helper()
	s := &Server{ALPNAddr: echoBackend(t, "alpn"), FallbackAddr: echoBackend(t, "fallback"), ReadTimeout: testReadTimeout}
	return s, startServer(t, s)
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

func TestRouting(t *testing.T) {
	acme := acmeHello(t)
	browser := captureClientHello(t, &tls.Config{ServerName: "b.test", NextProtos: []string{"h2", "http/1.1"}})
	tests := []struct {
		name      string
		payload   []byte
		closeSend bool   // half-close after the payload
		want      string // backend name
		slow      bool   // routed only at the read deadline
	}{
		{name: "acme-tls/1", payload: acme, want: "alpn"},
		{name: "acme-tls/1 then more bytes", payload: append(slices.Clone(acme), 0x17, 3, 3, 0, 3, 1, 2, 3), want: "alpn"},
		{name: "browser", payload: browser, want: "fallback"},
		{name: "browser half-closed", payload: browser, closeSend: true, want: "fallback"},
		{name: "not TLS", payload: []byte("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"), want: "fallback"},
		{name: "oversized record", payload: append([]byte{0x16, 3, 1, 0xff, 0xff}, make([]byte, 100)...), want: "fallback"},
		{name: "truncated", payload: acme[:len(acme)/2], want: "fallback", slow: true},
		{name: "truncated header", payload: acme[:3], want: "fallback", slow: true},
		{name: "truncated then half-closed", payload: acme[:len(acme)/2], closeSend: true, want: "fallback"},
		{name: "silent", payload: nil, want: "fallback", slow: true},
	}
	s, addr := newTestServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The clock starts before the dial: the server sets its read
			// deadline when it accepts, which can be before Dial returns.
			start := time.Now()
			c := dial(t, addr)
			if _, err := c.Write(tt.payload); err != nil {
				t.Fatal(err)
			}
			if tt.closeSend {
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			br := bufio.NewReader(c)
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading backend name: %v", err)
			}
			took := time.Since(start)
			if got := line[:len(line)-1]; got != tt.want {
				t.Errorf("routed to %q, want %q", got, tt.want)
			}
			if tt.slow && took < testReadTimeout {
				t.Errorf("routed after %v, before the read deadline %v", took, testReadTimeout)
			}
			if limit := testReadTimeout + 2*time.Second; took > limit || (!tt.slow && !tt.closeSend && took > testReadTimeout) {
				t.Errorf("routed after %v", took)
			}
			echo := make([]byte, len(tt.payload))
			if _, err := io.ReadFull(br, echo); err != nil {
				t.Fatalf("reading echo: %v", err)
			}
			if !bytes.Equal(echo, tt.payload) {
				t.Errorf("backend received %x, want %x", echo, tt.payload)
			}
			// The splice still works after the replay, in both directions.
			if !tt.closeSend {
				if _, err := c.Write([]byte("more")); err != nil {
					t.Fatal(err)
				}
				more := make([]byte, 4)
				if _, err := io.ReadFull(br, more); err != nil || string(more) != "more" {
					t.Fatalf("after replay: read %q, %v", more, err)
				}
				if err := c.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			// Half-close reached the backend, which closed in turn.
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after half-close: read %q, %v; want EOF", rest, err)
			}
		})
	}
	st := s.Stats()
	if st.Accepted != uint64(len(tests)) || st.ALPN != 2 || st.Fallback != uint64(len(tests)-2) || st.NotClientHello != 6 || st.DialErrors != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestClientLeavesEarly(t *testing.T) {
	s, addr := newTestServer(t)
	c := dial(t, addr)
	c.Close()
	waitFor(t, func() bool { return s.Stats().Active == 0 })
	if st := s.Stats(); st.Fallback != 0 || st.ALPN != 0 {
		t.Errorf("a client that sent nothing and left was routed: %+v", st)
	}
}

func TestProxyProtocol(t *testing.T) {
	s := &Server{ALPNAddr: echoBackend(t, "alpn"), FallbackAddr: echoBackend(t, "fallback"), ReadTimeout: testReadTimeout, ProxyProtocol: true}
	addr := startServer(t, s)
	payload := []byte("GET / HTTP/1.0\r\n\r\n")
	c := dial(t, addr)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	got = bytes.TrimPrefix(got, []byte("fallback\n"))
	hdr := got[:min(len(got), 28)]
	client := c.LocalAddr().(*net.TCPAddr)
	proxy := c.RemoteAddr().(*net.TCPAddr)
	want := append(proxyV2Signature[:], 0x21, 0x11, 0, 12, 127, 0, 0, 1, 127, 0, 0, 1)
	want = binary.BigEndian.AppendUint16(want, uint16(client.Port))
	want = binary.BigEndian.AppendUint16(want, uint16(proxy.Port))
	if !bytes.Equal(hdr, want) {
		t.Errorf("PROXY header = %x, want %x", hdr, want)
	}
	if !bytes.Equal(got[len(hdr):], payload) {
		t.Errorf("after the header: %q, want %q", got[len(hdr):], payload)
	}

	// The ALPN backend never gets a header.
	c = dial(t, addr)
	hello := acmeHello(t)
	c.Write(hello)
	c.CloseWrite()
	got, err = io.ReadAll(c)
	if err != nil || !bytes.Equal(got, append([]byte("alpn\n"), hello...)) {
		t.Errorf("ALPN backend got %x, %v; want the ClientHello alone", got, err)
	}
}

func TestProxyHeaderV2IPv6AndLocal(t *testing.T) {
	src := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1234}
	dst := &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 443}
	h := proxyHeaderV2(src, dst)
	if len(h) != 16+36 || h[12] != 0x21 || h[13] != 0x21 || binary.BigEndian.Uint16(h[14:]) != 36 ||
		!net.IP(h[16:32]).Equal(src.IP) || binary.BigEndian.Uint16(h[48:]) != 1234 || binary.BigEndian.Uint16(h[50:]) != 443 {
		t.Errorf("IPv6 header = %x", h)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if h := proxyHeaderV2(p1.LocalAddr(), p1.RemoteAddr()); len(h) != 16 || h[12] != 0x20 {
		t.Errorf("non-TCP header = %x, want LOCAL", h)
	}
}

func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	s := &Server{ALPNAddr: closed, FallbackAddr: closed, ReadTimeout: testReadTimeout, DialTimeout: time.Second}
	c := dial(t, startServer(t, s))
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	if got, err := io.ReadAll(c); len(got) != 0 {
		t.Errorf("read %q, %v; want the connection closed", got, err)
	}
	if st := s.Stats(); st.DialErrors != 1 {
		t.Errorf("Stats = %+v, want 1 dial error", st)
	}
}

// TestShutdownDrains: Shutdown stops accepting at once and returns when the
// last open connection ends, which keeps working meanwhile.
func TestShutdownDrains(t *testing.T) {
	s := &Server{ALPNAddr: echoBackend(t, "alpn"), FallbackAddr: echoBackend(t, "fallback"), ReadTimeout: testReadTimeout}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c := dial(t, ln.Addr().String())
	br := bufio.NewReader(c)
	c.Write([]byte("ping"))
	if line, err := br.ReadString('\n'); err != nil || line != "fallback\n" {
		t.Fatalf("read %q, %v", line, err)
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	if c2, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c2.Close()
		t.Error("a new connection was accepted during Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a connection open", err)
	case <-time.After(200 * time.Millisecond):
	}
	c.Write([]byte("pong"))
	buf := make([]byte, 8)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "pingpong" {
		t.Fatalf("during Shutdown: read %q, %v", buf, err)
	}
	c.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last connection closed")
	}
	if st := s.Stats(); st.Active != 0 {
		t.Errorf("Active = %d after Shutdown", st.Active)
	}
}

// TestShutdownDeadline: when ctx ends first, Shutdown closes what is left.
func TestShutdownDeadline(t *testing.T) {
	s := &Server{ALPNAddr: echoBackend(t, "alpn"), FallbackAddr: echoBackend(t, "fallback"), ReadTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	spliced := dial(t, ln.Addr().String())
	spliced.Write([]byte("x"))
	if line, err := bufio.NewReader(spliced).ReadString('\n'); err != nil || line != "fallback\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	reading := dial(t, ln.Addr().String()) // still in the ClientHello read
	reading.Write([]byte{0x16, 3})
	waitFor(t, func() bool { return s.Stats().Accepted == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Shutdown took %v", took)
	}
	for _, c := range []net.Conn{spliced, reading} {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("connection not closed by Shutdown: %v", err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDialErrorWarnsOnce: while a backend is down, every connection for it
// is closed and counted, but only the first in a minute is a warning (for
// each backend): clients that keep coming while the web server restarts
// are not a flood of log lines.
func TestDialErrorWarnsOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	var logs testsvc.Buffer
	s := &Server{ALPNAddr: closed, FallbackAddr: closed, ReadTimeout: testReadTimeout, DialTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	addr := startServer(t, s)
	const n = 5
	for range n {
		c := dial(t, addr)
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		if got, err := io.ReadAll(c); len(got) != 0 {
			t.Fatalf("read %q, %v; want the connection closed", got, err)
		}
	}
	c := dial(t, addr)
	c.Write(acmeHello(t))
	if got, err := io.ReadAll(c); len(got) != 0 {
		t.Fatalf("read %q, %v; want the connection closed", got, err)
	}
	waitFor(t, func() bool { return s.Stats().DialErrors == n+1 })
	out := logs.String()
	if got := strings.Count(out, "backend unreachable"); got != 2 {
		t.Errorf("%d warnings for %d unreachable connections to two backends, want 2 (one each):\n%s", got, n+1, out)
	}
	if !strings.Contains(out, "route=fallback") || !strings.Contains(out, "route=alpn") {
		t.Errorf("want one warning for each route:\n%s", out)
	}
}
