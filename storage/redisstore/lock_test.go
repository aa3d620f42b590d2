package redisstore_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// slowReplyProxy forwards TCP connections to a Redis server; once armed,
// it holds back the next reply the server sends, on whichever connection,
// for delay: the command has run in Redis, but the client times out
// waiting for its answer.
type slowReplyProxy struct {
	address string
	delay   time.Duration
	armed   atomic.Bool
	delayed atomic.Int32
}

func newSlowReplyProxy(t *testing.T, target string, delay time.Duration) *slowReplyProxy {
	p := &slowReplyProxy{delay: delay}
	p.address = testsvc.ReplyProxy(t, target, p.replies)
	return p
}

func (p *slowReplyProxy) addr() string { return p.address }

// replies copies the server's replies to the client, holding one back
// while armed.
func (p *slowReplyProxy) replies(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if p.armed.CompareAndSwap(true, false) {
				p.delayed.Add(1)
				time.Sleep(p.delay)
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestLockReplyLost: the reply to the command that takes a lease is lost
// (it comes after the client's read timeout), though Redis took the lease
// for this holder. The client's retry finds the lease held with this
// holder's own token: Lock succeeds at once rather than waiting for the
// lease to expire, and unlock frees it for the next holder.
func TestLockReplyLost(t *testing.T) {
	t.Parallel()
	r := testsvc.Redis(t)
	p := newSlowReplyProxy(t, r.Addr(), time.Second)
	s, err := redisstore.Open("redis://" + p.addr() + "?timeout=200ms&lease=20s&prefix=" + newPrefix())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.Client.Ping(ctx).Err(); err != nil { // a pooled connection, set up
		t.Fatal(err)
	}
	p.armed.Store(true)
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	unlock, err := s.Lock(lctx, "lost-reply")
	took := time.Since(start)
	if p.delayed.Load() != 1 {
		t.Fatalf("the proxy delayed %d replies, want 1", p.delayed.Load())
	}
	if err != nil {
		t.Fatalf("Lock after a lost reply: %v (after %s); want the lease this holder took", err, took.Round(time.Millisecond))
	}
	t.Logf("Lock took %s with its first reply lost", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("Lock took %s, want well under the 20s lease", took)
	}
	unlock()
	lctx2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	unlock2, err := s.Lock(lctx2, "lost-reply")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock2()
}
