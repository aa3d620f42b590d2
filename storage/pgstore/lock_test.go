package pgstore_test

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage/pgstore"
)

// Server messages of the PostgreSQL wire protocol that the proxy looks for.
var (
	// insertedOne is CommandComplete for an INSERT (or an ON CONFLICT DO
	// UPDATE) that wrote one row: the lock was taken.
	insertedOne = []byte("C\x00\x00\x00\x0fINSERT 0 1\x00")
	// readyForQuery ends the reply to a Sync: the statement's implicit
	// transaction has committed by then.
	readyForQuery = []byte("Z\x00\x00\x00\x05")
)

// replyDropProxy forwards TCP connections to a PostgreSQL server on
// loopback. While armed (for n replies), it withholds the reply to the next statement that
// inserts one row, on whichever connection, until the server's
// ReadyForQuery after it has arrived (the row is committed), and then
// closes that connection instead of forwarding the reply: the client never
// learns that its statement took effect.
type replyDropProxy struct {
	address string
	armed   atomic.Int32 // replies left to drop
	dropped atomic.Int32
}

func newReplyDropProxy(t *testing.T, target string) *replyDropProxy {
	p := &replyDropProxy{}
	p.address = testsvc.ReplyProxy(t, target, p.replies)
	return p
}

func (p *replyDropProxy) addr() string { return p.address }

// takeOne takes one from n if it is positive, and reports whether it did.
func takeOne(n *atomic.Int32) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

// replies copies the server's replies to the client until either side
// closes, or until it has withheld a reply while armed.
func (p *replyDropProxy) replies(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	var held []byte // the withheld reply, from its CommandComplete on
	for {
		n, err := server.Read(buf)
		chunk := buf[:n]
		if held == nil && bytes.Contains(chunk, insertedOne) && takeOne(&p.armed) {
			held = []byte{}
		}
		if held != nil {
			held = append(held, chunk...)
			if bytes.Contains(held[bytes.Index(held, insertedOne):], readyForQuery) {
				p.dropped.Add(1)
				return
			}
		} else if n > 0 {
			if _, werr := client.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestLockReplyLost: the statement that takes a lock's lease commits, but
// its reply is lost (the connection drops), so Lock fails although the
// lease is this holder's. That lease must not hold anyone off: a second
// Lock by the same Store, and a Lock by another node, succeed at once
// rather than after the 20s lease.
func TestLockReplyLost(t *testing.T) {
	t.Parallel()
	pg := testsvc.Postgres(t)
	p := newReplyDropProxy(t, pg.Addr())
	schema := newSchema()
	ctx := t.Context()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := pgstore.OpenPassword(octx, "postgres://"+testsvc.PostgresUser+"@"+p.addr()+
		"/postgres?sslmode=disable&timeout=2s&lease=20s&schema="+schema, pg.Password())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other := open(t, pg, schema) // another node, not behind the proxy

	// lockLost takes name through s with its reply dropped.
	lockLost := func(name string) {
		t.Helper()
		before := p.dropped.Load()
		p.armed.Store(2) // the statement's reply, and that of Lock's retry with the same token
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		unlock, err := s.Lock(lctx, name)
		p.armed.Store(0)
		if p.dropped.Load() != before+2 {
			t.Fatalf("the proxy dropped %d replies, want 2", p.dropped.Load()-before)
		}
		if err == nil {
			unlock()
			t.Fatalf("Lock(%q) with its reply dropped succeeded; this test wants the lost reply to fail it", name)
		}
		t.Logf("Lock(%q) with its reply dropped: %v", name, err)
	}
	// lockSoon wants l to take name well within the 20s lease.
	lockSoon := func(l interface {
		Lock(context.Context, string) (func(), error)
	}, who, name string) {
		t.Helper()
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		unlock, err := l.Lock(lctx, name)
		took := time.Since(start)
		if err != nil {
			t.Errorf("Lock(%q) by %s after a lost reply: %v (after %s); want the lock at once, not after the 20s lease",
				name, who, err, took.Round(time.Millisecond))
			return
		}
		t.Logf("Lock(%q) by %s after a lost reply took %s", name, who, took.Round(time.Millisecond))
		unlock()
	}

	// One reply lost: Lock asks again at once with the same token, finds
	// the lease its own, and succeeds.
	before := p.dropped.Load()
	p.armed.Store(1)
	lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
	unlock, err := s.Lock(lctx, "one-lost")
	lcancel()
	p.armed.Store(0)
	if err != nil || p.dropped.Load() != before+1 {
		t.Fatalf("Lock with one reply dropped (%d dropped) = %v; want the lock, through its retry", p.dropped.Load()-before, err)
	}
	unlock()
	lockSoon(other, "another Store", "one-lost")

	lockLost("same-holder")
	lockSoon(s, "the same Store", "same-holder")

	lockLost("other-holder")
	lockSoon(other, "another Store", "other-holder")

	// A retry of the statement with the same token, as after a reply
	// lost within one attempt, finds the lease its own; another token
	// does not.
	for _, tt := range []struct {
		token string
		want  bool
	}{{"a", true}, {"a", true}, {"b", false}} {
		if got, err := s.Take(ctx, "retried", tt.token); err != nil || got != tt.want {
			t.Errorf("Take(%q, %q) = %v, %v; want %v", "retried", tt.token, got, err, tt.want)
		}
	}
}
