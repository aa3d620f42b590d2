package proxyprotocol

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/pires/go-proxyproto"
)

// TestListenV2: a trusted source's PROXY v2 header (what AWS NLB and
// HAProxy's send-proxy-v2 send) sets RemoteAddr and is not part of the
// connection's bytes.
func TestListenV2(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listen(raw, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil)
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 4711}, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443})
		h.WriteTo(c)
		c.Write([]byte("hello"))
		time.Sleep(time.Second) // until the server read it
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 5)
	if _, err := c.Read(buf); err != nil || !bytes.Equal(buf, []byte("hello")) {
		t.Fatalf("read %q, %v; want the bytes after the header", buf, err)
	}
	if got := c.RemoteAddr().String(); got != "[2001:db8::7]:4711" {
		t.Errorf("RemoteAddr = %s, want the header's source", got)
	}
}

// TestParsePrefix: prefixes and single addresses; garbage refused.
func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8": "10.0.0.0/8", "10.1.2.3/8": "10.0.0.0/8", "10.0.0.5": "10.0.0.5/32",
		"fd00::/8": "fd00::/8", "::ffff:10.0.0.5": "10.0.0.5/32", "2001:db8::1": "2001:db8::1/128",
	} {
		got, err := ParsePrefix(in)
		if err != nil || got.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "a.example", "10.0.0"} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) succeeded", bad)
		}
	}
	if raw := (&net.TCPListener{}); Listen(raw, nil, nil) != net.Listener(raw) {
		t.Error("Listen with no trusted sources wrapped the listener")
	}
}

// TestMissingHeaderWarned: a trusted source that sends no header (a
// balancer without send-proxy) has its connection fail at the first
// read, with one warning for several such connections; a source that
// connects and closes (a TCP health check) is not warned about.
func TestMissingHeaderWarned(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	ln := Listen(raw, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, slog.New(slog.NewTextHandler(&logs, nil)))
	defer ln.Close()
	serve := func(send string) error {
		go func() {
			c, err := net.Dial("tcp", raw.Addr().String())
			if err != nil {
				return
			}
			defer c.Close()
			c.Write([]byte(send))
			time.Sleep(200 * time.Millisecond)
		}()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 64))
		return err
	}
	if err := serve(""); err == nil {
		t.Fatal("a connection that sent nothing read data")
	}
	if logs.Len() != 0 {
		t.Errorf("a connection closed without a byte was warned about: %s", logs.String())
	}
	for range 3 {
		if err := serve("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"); !errors.Is(err, proxyproto.ErrNoProxyProtocol) {
			t.Fatalf("read without a header: %v, want ErrNoProxyProtocol", err)
		}
	}
	if n := strings.Count(logs.String(), "without a valid PROXY protocol header"); n != 1 || !strings.Contains(logs.String(), "from=127.0.0.1:") {
		t.Errorf("%d warnings for 3 connections, want 1 naming the source:\n%s", n, logs.String())
	}
}

// TestClientLimitBehindBalancer: behind a balancer the per-client limit
// holds the clients its headers name (each balancer connection is
// exempt at accept): a third connection for one client is closed at its
// first read, with a warning naming the client, while another client
// behind the same balancer is served; a closed connection frees its
// client's place.
func TestClientLimitBehindBalancer(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	balancer := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	limited := connlimit.Listen(raw, connlimit.Limits{PerClient: 2, Exempt: balancer}, logger)
	ln := Listen(limited, balancer, logger)
	defer ln.Close()
	// open connects as client through the "balancer" and returns the
	// server's side after its first read, or the read's error; with
	// silent, the client sends the header alone and the read times out.
	open := func(client string, silent bool) (net.Conn, error) {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL} // a health check
		if client == "unknown" {                                       // a client the balancer cannot name
			h = &proxyproto.Header{Version: 1, Command: proxyproto.PROXY, TransportProtocol: proxyproto.UNSPEC}
		} else if client != "" {
			h = proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(client), Port: 4711}, &net.TCPAddr{IP: net.ParseIP("192.0.2.100"), Port: 443})
		}
		if _, err := h.WriteTo(c); err != nil {
			t.Fatal(err)
		}
		deadline := 5 * time.Second
		if silent {
			deadline = 200 * time.Millisecond
		} else {
			c.Write([]byte("x"))
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		s.SetDeadline(time.Now().Add(deadline))
		if _, err := s.Read(make([]byte, 1)); err != nil && !(silent && os.IsTimeout(err)) {
			s.Close()
			return nil, err
		}
		return s, nil
	}
	first, err := open("192.0.2.1", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open("192.0.2.1", true); err != nil { // counted before any byte after the header
		t.Fatal(err)
	}
	if _, err := open("192.0.2.1", false); !errors.Is(err, connlimit.ErrTooManyFromClient) {
		t.Fatalf("a third connection of one client behind the balancer read %v, want ErrTooManyFromClient", err)
	}
	if _, err := open("192.0.2.2", false); err != nil {
		t.Fatalf("another client behind the balancer: %v", err)
	}
	first.Close()
	if _, err := open("192.0.2.1", false); err != nil {
		t.Fatalf("after one of its connections closed, the client's next: %v", err)
	}
	// A client in the balancers' own network is still one client; the
	// balancer's health checks (LOCAL headers) count for no client.
	for i := range 3 {
		if _, err := open("127.0.0.5", false); (i < 2) != (err == nil) {
			t.Errorf("connection %d of 127.0.0.5, inside the balancer prefix, read %v", i+1, err)
		}
		if _, err := open("", false); err != nil {
			t.Errorf("health check %d: %v", i+1, err)
		}
	}
	// Clients the balancer cannot name (PROXY UNKNOWN) count as the
	// balancer's own address, together: not unlimited.
	for i := range 3 {
		if _, err := open("unknown", false); (i < 2) != (err == nil) {
			t.Errorf("connection %d with a PROXY UNKNOWN header read %v", i+1, err)
		}
	}
	if !strings.Contains(logs.String(), "connection limit of one client reached") || !strings.Contains(logs.String(), "client=192.0.2.1/32") {
		t.Errorf("no warning naming the client:\n%s", logs.String())
	}
	if n := limited.Open(); n != 10 {
		t.Errorf("%d connections counted open, want 10 (the refused and the closed ones uncounted)", n)
	}
}

// TestCloseWhileHeaderPending: closing a balancer's connection whose
// header has not come (a server shutting down) does not wait for it, and
// the read waiting for it ends.
func TestCloseWhileHeaderPending(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	balancer := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	ln := Listen(connlimit.Listen(raw, connlimit.Limits{Exempt: balancer}, nil), balancer, nil)
	defer ln.Close()
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 1))
		read <- err
	}()
	time.Sleep(100 * time.Millisecond) // the read is waiting for the header
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v while the header was pending, want it at once (HeaderTimeout is %v)", d, HeaderTimeout)
	}
	select {
	case err := <-read:
		if err == nil {
			t.Error("the read of a closed connection succeeded")
		}
	case <-time.After(HeaderTimeout / 2):
		t.Error("the read still waits for the header after Close")
	}
}
