package connlimit

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// server accepts on a loopback listener within limits and keeps every
// connection it gets open until its client closes it (or the test ends),
// writing "hi" on each so a client can tell an accepted connection from a
// closed one.
func server(t *testing.T, limits Limits) (*Listener, *testsvc.Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testsvc.Buffer{}
	l := Listen(ln, limits, slog.New(slog.NewTextHandler(logs, nil)))
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				c.Write([]byte("hi"))
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l, logs
}

// dial connects from local (an address on the loopback interface) and
// reports whether the server accepted the connection: it reads "hi", or
// an EOF or reset (then the connection may be nil).
func dial(t *testing.T, l *Listener, local string) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", l.Addr().String())
	if errors.Is(err, syscall.ECONNRESET) {
		return nil, false // reset so fast that connect saw it
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	_, err = io.ReadFull(c, buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("neither accepted nor closed within 5 s")
	}
	return c, err == nil
}

// TestMax: past Max open connections a new one is closed at once, with
// one warning; once one closes, the next is accepted again.
func TestMax(t *testing.T) {
	l, logs := server(t, Limits{Max: 2, PerClient: -1})
	a, ok1 := dial(t, l, "127.0.0.1")
	_, ok2 := dial(t, l, "127.0.0.1")
	if !ok1 || !ok2 {
		t.Fatalf("connections within the limit refused: %v %v", ok1, ok2)
	}
	for i := range 3 {
		if _, ok := dial(t, l, "127.0.0.1"); ok {
			t.Fatalf("connection %d over Max 2 accepted", 3+i)
		}
	}
	if got := l.Rejected(); got != 3 {
		t.Errorf("Rejected() = %d, want 3", got)
	}
	if n := strings.Count(logs.String(), "connection limit reached"); n != 1 {
		t.Errorf("%d warnings for 3 connections closed in a minute, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "max_conns=2") {
		t.Errorf("the warning does not name the limit:\n%s", logs)
	}
	a.Close()
	waitOpen(t, l, 1)
	if _, ok := dial(t, l, "127.0.0.1"); !ok {
		t.Error("a connection after one closed was refused")
	}
}

// TestPerClient: one client address gets PerClient connections; another
// address on the same host still gets its own.
func TestPerClient(t *testing.T) {
	l, logs := server(t, Limits{PerClient: 2})
	for range 2 {
		if _, ok := dial(t, l, "127.0.0.1"); !ok {
			t.Fatal("a connection within the per-client limit was refused")
		}
	}
	if _, ok := dial(t, l, "127.0.0.1"); ok {
		t.Fatal("a third connection from 127.0.0.1 with PerClient 2 was accepted")
	}
	if !strings.Contains(logs.String(), "connection limit of one client reached") || !strings.Contains(logs.String(), "client=127.0.0.1/32") {
		t.Errorf("no warning naming the client:\n%s", logs)
	}
	if _, err := testsvc.OtherLoopback(); err != nil {
		t.Logf("%v: the second client is not tried", err)
		return
	}
	if _, ok := dial(t, l, "127.0.0.2"); !ok {
		t.Error("another client address was refused while the first was at its limit")
	}
	if got := l.Open(); got != 3 {
		t.Errorf("Open() = %d, want 3", got)
	}
}

// TestCloseOnce: closing a connection twice uncounts it once.
func TestCloseOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(ln, Limits{}, nil)
	defer l.Close()
	for range 2 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := l.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc.Close()
	sc.Close()
	if got := l.Open(); got != 2 {
		t.Fatalf("Open() = %d after one of 3 connections closed twice, want 2", got)
	}
}

// TestClientOf: an IPv4 client counts by its address, an IPv6 one by its
// /64, an IPv4-mapped one as IPv4; an exempt one (a load balancer) by
// none.
func TestClientOf(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7":               "192.0.2.7/32",
		"::ffff:192.0.2.7":        "192.0.2.7/32",
		"2001:db8:1:2:aaaa::1":    "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:1:2:3": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":         "2001:db8:1:3::/64",
	} {
		got := Limits{}.clientOf(&net.TCPAddr{IP: net.ParseIP(addr), Port: 1})
		if got != netip.MustParsePrefix(want) {
			t.Errorf("clientOf(%s) = %s, want %s", addr, got, want)
		}
	}
	if got := (Limits{}).clientOf(&net.UnixAddr{Name: "/tmp/s"}); got.IsValid() {
		t.Errorf("clientOf(unix) = %s, want none", got)
	}
	exempt := Limits{Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:9::/48")}}
	for addr, want := range map[string]bool{"10.1.2.3": false, "::ffff:10.1.2.3": false, "2001:db8:9:1::5": false, "11.0.0.1": true, "2001:db8:8::1": true} {
		if got := exempt.clientOf(&net.TCPAddr{IP: net.ParseIP(addr), Port: 1}); got.IsValid() != want {
			t.Errorf("with Exempt, clientOf(%s) = %s; want counted: %v", addr, got, want)
		}
	}
}

func waitOpen(t *testing.T, l *Listener, want int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); l.Open() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("Open() = %d, want %d", l.Open(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkAdmitRelease is the bookkeeping one connection costs, from
// many goroutines at once (clients from 256 addresses): what the limits add
// to a connection's accept and close, which take microseconds of system
// calls themselves.
func BenchmarkAdmitRelease(b *testing.B) {
	c := NewCounter(Limits{}, nil)
	clients := make([]net.Addr, 256)
	for i := range clients {
		clients[i] = &net.TCPAddr{IP: net.IPv4(192, 0, 2, byte(i)), Port: 1000 + i}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			client, err := c.Admit(clients[i%len(clients)])
			i++
			if err == nil {
				c.Release(client)
			}
		}
	})
}

// BenchmarkAccept is a loopback connection made, accepted and closed,
// through a plain listener and through a Listener: the ratio of the two
// is what the limits cost a connection (docs/performance.md).
func BenchmarkAccept(b *testing.B) {
	for _, limited := range []bool{true, false, true, false} {
		name := "plain"
		if limited {
			name = "limited"
		}
		b.Run(name, func(b *testing.B) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var ln net.Listener = raw
			if limited {
				ln = Listen(raw, Limits{}, nil)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			b.ResetTimer()
			for b.Loop() {
				c, err := net.Dial("tcp", raw.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				c.Read(make([]byte, 1)) // until the server closed it
				c.Close()
			}
		})
	}
}

// TestRefusals: a Refusals counts the refusals of the Counters whose
// Limits hold it, a request counter's apart from connections, by
// listener and limit; another Refusals, and a Counter without one, count
// nothing of them.
func TestRefusals(t *testing.T) {
	r, other := new(Refusals), new(Refusals)
	other.Start("other:1", false)
	c := NewRequestCounter(Limits{Max: 1, PerClient: 1, Refusals: r}, slog.New(slog.DiscardHandler))
	uncounted := NewCounter(Limits{Max: 1}, slog.New(slog.DiscardHandler))
	from := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 1}
	const what = "test-refusals:1"
	for _, c := range []*Counter{c, uncounted} {
		client, err := c.Admit(from)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if client, err := c.Admit(from); err != nil {
				c.Refused(client, err, what)
			}
		}
		c.Release(client)
	}
	got := r.Counts()
	if n := got[RefusalKey{Listener: what, Requests: true}]; n != 2 || len(got) != 1 {
		t.Errorf("requests refused over Max: %d, want 2 and no other count (%v)", n, got)
	}
	if got := other.Counts(); len(got) != 2 || got[RefusalKey{Listener: "other:1"}] != 0 {
		t.Errorf("another Refusals: %v, want other:1's two counts at 0", got)
	}
}
