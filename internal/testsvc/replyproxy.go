package testsvc

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// ReplyProxy forwards TCP connections from a new loopback listener to
// target, a server the test started: what a client sends goes through as
// it is, and what the server replies goes through replies(client, server),
// which copies it and may delay, withhold or cut it. It is the one stand-in
// the tests allow, a fault-injecting proxy in front of a real server, for
// faults the server cannot be made to show (a reply lost after the server
// acted on the request). It returns the listener's address; when the test
// ends, the listener and every connection are closed and their goroutines
// waited for.
func ReplyProxy(t *testing.T, target string, replies func(client, server net.Conn)) string {
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
	track := func(cs ...net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, cs...)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			track(c, s)
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(s, c); s.Close() }()
			go func() { defer wg.Done(); replies(c, s); c.Close(); s.Close() }()
		}
	}()
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
