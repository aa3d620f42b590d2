package alpnproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// serveBackend runs a backend on a loopback listener (testsvc.ServeTCP).
func serveBackend(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	return testsvc.ServeTCP(t, handle)
}

// wantClosed checks that the proxy closes c within d (with nothing more to
// read than want) and returns how long it took.
func wantClosed(t *testing.T, c net.Conn, br *bufio.Reader, want string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(d)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(br)
	took := time.Since(start)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after %v (read %q)", d, got)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading until the connection closes: %v", err)
	}
	if string(got) != want {
		t.Errorf("read %q before the connection closed, want %q", got, want)
	}
	return took
}

// TestMaxConns: while MaxConns connections are open (spliced, or still
// sending their first record), the next one is closed at once, before the
// proxy reads anything from it; once one of them ends, new connections are
// served again.
func TestMaxConns(t *testing.T) {
	const max = 3
	// A long ReadTimeout: a connection that were not closed at once would
	// wait that long for its ClientHello.
	s := &Server{ALPNAddr: echoBackend(t, "alpn"), FallbackAddr: echoBackend(t, "fallback"),
		ReadTimeout: 10 * time.Second, MaxConns: max}
	addr := startServer(t, s)
	routed := func(c net.Conn) {
		t.Helper()
		if _, err := c.Write([]byte("GET")); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "fallback\n" {
			t.Fatalf("read %q, %v; want the fallback's greeting", line, err)
		}
	}
	var spliced []net.Conn
	for range max - 1 {
		c := dial(t, addr)
		routed(c)
		spliced = append(spliced, c)
	}
	dial(t, addr) // silent: still being read
	waitFor(t, func() bool { return s.Stats().Active == max })

	// Closed with a reset, which may reach the client while it connects.
	start := time.Now()
	if over, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		defer over.Close()
		wantClosed(t, over, bufio.NewReader(over), "", 2*time.Second)
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connecting beyond MaxConns: %v, want a connection closed at once", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("connection %d closed after %v, want at once", max+1, took)
	}
	if st := s.Stats(); st.Rejected != 1 || st.Active != max {
		t.Errorf("Stats = %+v, want 1 rejected and %d active", st, max)
	}

	spliced[0].Close()
	waitFor(t, func() bool { return s.Stats().Active == max-1 })
	routed(dial(t, addr))
	if st := s.Stats(); st.Rejected != 1 || st.Accepted != max+2 {
		t.Errorf("Stats = %+v, want %d accepted, 1 rejected", st, max+2)
	}
}

// TestIdleTimeout: a spliced connection without a byte in either direction
// for IdleTimeout is closed; one with traffic in either direction is not.
func TestIdleTimeout(t *testing.T) {
	const (
		idle  = 500 * time.Millisecond
		every = 100 * time.Millisecond // traffic on the active connections
		watch = 4 * idle               // how long they are watched
	)
	t.Parallel()
	// Backends: each greets with its name and a newline, then...
	echo := func(c net.Conn) { // echoes
		io.WriteString(c, "echo\n")
		io.Copy(c, c)
	}
	ticker := func(c net.Conn) { // sends a byte every tick, reads nothing
		io.WriteString(c, "ticker\n")
		for {
			time.Sleep(every)
			if _, err := c.Write([]byte{'.'}); err != nil {
				return
			}
		}
	}
	sink := func(c net.Conn) { // reads everything, sends nothing
		io.WriteString(c, "sink\n")
		io.Copy(io.Discard, c)
	}
	silent := func(c net.Conn) { io.Copy(io.Discard, c) } // sends nothing at all

	// proxy starts a Server in front of backend and returns a connection
	// through it that sent first (if any) and read the greeting.
	proxy := func(t *testing.T, backend func(net.Conn), timeout time.Duration, first, greeting string) (*Server, net.Conn, *bufio.Reader) {
		t.Helper()
		addr := serveBackend(t, backend)
		s := &Server{ALPNAddr: addr, FallbackAddr: addr, ReadTimeout: testReadTimeout, IdleTimeout: timeout}
		c := dial(t, startServer(t, s))
		if first != "" {
			if _, err := io.WriteString(c, first); err != nil {
				t.Fatal(err)
			}
		}
		br := bufio.NewReader(c)
		if greeting != "" {
			if line, err := br.ReadString('\n'); err != nil || line != greeting {
				t.Fatalf("read %q, %v; want %q", line, err, greeting)
			}
		}
		return s, c, br
	}
	// stillOpen checks, after the active period, that the connection was
	// not closed for idleness.
	stillOpen := func(t *testing.T, s *Server) {
		t.Helper()
		if st := s.Stats(); st.IdleClosed != 0 || st.Active != 1 {
			t.Errorf("Stats = %+v after %v of traffic every %v; want the connection open (idle timeout %v)", st, watch, every, idle)
		}
	}

	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		s, c, br := proxy(t, echo, idle, "ping", "echo\n")
		took := wantClosed(t, c, br, "ping", idle+3*time.Second)
		if took < idle-100*time.Millisecond {
			t.Errorf("idle connection closed after %v, before the idle timeout %v", took, idle)
		}
		waitFor(t, func() bool { return s.Stats().Active == 0 })
		if st := s.Stats(); st.IdleClosed != 1 {
			t.Errorf("Stats = %+v, want 1 closed for idleness", st)
		}
		t.Logf("idle connection closed %v after its last byte (idle timeout %v)", took.Round(time.Millisecond), idle)
	})

	t.Run("silent client and backend", func(t *testing.T) {
		// Nothing ever sent: routed to the fallback at the read deadline,
		// then closed once idle.
		t.Parallel()
		s, c, br := proxy(t, silent, idle, "", "")
		if took := wantClosed(t, c, br, "", testReadTimeout+idle+3*time.Second); took < testReadTimeout+idle-100*time.Millisecond {
			t.Errorf("silent connection closed after %v, want after the read deadline and the idle timeout (%v)", took, testReadTimeout+idle)
		}
		if st := s.Stats(); st.Fallback != 1 {
			t.Errorf("Stats = %+v, want the silent connection routed to the fallback", st)
		}
	})

	t.Run("both ways", func(t *testing.T) {
		t.Parallel()
		s, c, br := proxy(t, echo, idle, "ping", "echo\n")
		if _, err := io.ReadFull(br, make([]byte, 4)); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(watch); time.Now().Before(end); time.Sleep(every) {
			if _, err := c.Write([]byte{'x'}); err != nil {
				t.Fatalf("write on an active connection: %v", err)
			}
			if _, err := br.ReadByte(); err != nil {
				t.Fatalf("read on an active connection: %v", err)
			}
		}
		stillOpen(t, s)
	})

	t.Run("backend to client only", func(t *testing.T) {
		t.Parallel()
		s, _, br := proxy(t, ticker, idle, "GET", "ticker\n")
		for end := time.Now().Add(watch); time.Now().Before(end); {
			if _, err := br.ReadByte(); err != nil {
				t.Fatalf("read on a connection the backend keeps sending on: %v", err)
			}
		}
		stillOpen(t, s)
	})

	t.Run("client to backend only", func(t *testing.T) {
		t.Parallel()
		s, c, _ := proxy(t, sink, idle, "GET", "sink\n")
		for end := time.Now().Add(watch); time.Now().Before(end); time.Sleep(every) {
			if _, err := c.Write([]byte{'x'}); err != nil {
				t.Fatalf("write on a connection the client keeps sending on: %v", err)
			}
		}
		stillOpen(t, s)
	})

	t.Run("off", func(t *testing.T) {
		t.Parallel()
		s, _, _ := proxy(t, echo, -1, "ping", "echo\n")
		time.Sleep(2 * idle)
		stillOpen(t, s)
	})
}

// TestLimitDefaults: the zero Server limits connections and idleness.
func TestLimitDefaults(t *testing.T) {
	var s Server
	if got := s.maxConns(); got != 10000 {
		t.Errorf("maxConns() = %d, want 10000", got)
	}
	if got := s.idleTimeout(); got != 10*time.Minute {
		t.Errorf("idleTimeout() = %v, want 10m", got)
	}
	s = Server{MaxConns: -1, IdleTimeout: -1}
	if s.maxConns() > 0 || s.idleTimeout() > 0 {
		t.Errorf("negative MaxConns and IdleTimeout = %d, %v; want no limits", s.maxConns(), s.idleTimeout())
	}
}

// TestMaxConnsPerClient: a client address holding MaxConnsPerClient
// connections (silent, still being read) gets its next one closed at once;
// another address is still routed, well under MaxConns.
func TestMaxConnsPerClient(t *testing.T) {
	s := &Server{ALPNAddr: echoBackend(t, "alpn"), FallbackAddr: echoBackend(t, "fallback"),
		ReadTimeout: 10 * time.Second, MaxConnsPerClient: 2}
	addr := startServer(t, s)
	for range 2 {
		dial(t, addr) // silent: held until ReadTimeout
	}
	waitFor(t, func() bool { return s.Stats().Active == 2 })
	if over, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		defer over.Close()
		wantClosed(t, over, bufio.NewReader(over), "", 2*time.Second)
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a third connection from 127.0.0.1: %v, want it closed at once", err)
	}
	if _, err := testsvc.OtherLoopback(); err != nil {
		t.Logf("%v: another client is not tried", err)
		return
	}
	c, err := (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "fallback\n" {
		t.Errorf("127.0.0.2 while 127.0.0.1 was at its limit: read %q, %v; want the fallback's greeting", line, err)
	}
}
