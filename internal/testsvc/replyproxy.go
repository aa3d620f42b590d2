package testsvc

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// ServeTCP runs a server on a new loopback listener that hands each
// connection to handle, which owns it (it is closed when handle returns),
// and returns the listener's address. When the test ends, the listener
// and every connection are closed and the handlers waited for.
func ServeTCP(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards conns
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// ReplyProxy forwards TCP connections from a new loopback listener to
// target, a server the test started: what a client sends goes through as
// it is, and what the server replies goes through replies(client, server),
// which copies it and may delay, withhold or cut it. It is the one stand-in
// the tests allow, a fault-injecting proxy in front of a real server, for
// faults the server cannot be made to show (a reply lost after the server
// acted on the request). It returns the listener's address; the test's
// end closes everything (ServeTCP).
func ReplyProxy(t *testing.T, target string, replies func(client, server net.Conn)) string {
	t.Helper()
	return ServeTCP(t, func(c net.Conn) {
		s, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			return
		}
		defer s.Close()
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
		replies(c, s)
		c.Close() // ends the copy above, if the client has not
		wg.Wait()
	})
}
