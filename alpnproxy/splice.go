package alpnproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// splice copies both ways, each direction with copy, until both have
// ended. When one side finishes sending (copy returns nil at EOF), the
// other side's write half is closed so the peer sees EOF too while its
// answer still flows back; on any error both connections are closed, which
// ends the other direction. It returns the first error a direction ended
// with.
func splice(client, backend net.Conn, copy func(dst, src net.Conn) error) error {
	errc := make(chan error, 2)
	cp := func(dst, src net.Conn) {
		err := copy(dst, src)
		if err == nil {
			err = closeWrite(dst)
		}
		errc <- err
	}
	go cp(backend, client)
	go cp(client, backend)
	first := <-errc
	if first != nil {
		client.Close()
		backend.Close()
	}
	if second := <-errc; first == nil {
		first = second
	}
	return first
}

// copyAll copies src to dst until EOF with io.Copy, which lets the kernel
// move the bytes between two TCP connections (splice(2) on Linux).
func copyAll(dst, src net.Conn) error {
	_, err := io.Copy(dst, src)
	return err
}

// closeWrite half-closes c when it can, and closes it otherwise.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Buffer sizes of the idle-timed copy: a quiet connection holds a small
// buffer each way, one that fills it borrows a big one from the Server's
// pool until its reads come back small again.
const (
	smallBuffer = 4 << 10
	bigBuffer   = 32 << 10
)

// errIdle ends a direction of a spliced connection on which no byte moved
// either way for the idle timeout.
var errIdle = errors.New("alpnproxy: connection idle")

// spliceIdle splices client and backend, closing both once no byte has
// moved either way for idle. It reports whether that is how it ended.
func (s *Server) spliceIdle(client, backend net.Conn, idle time.Duration) (idled bool) {
	ic := &idleCopier{idle: idle, bufs: &s.bufs, start: time.Now()}
	return errors.Is(splice(client, backend, ic.copy), errIdle)
}

// idleCopier copies both directions of one spliced connection. Each
// direction waits for its reads and writes until the last byte moved in
// either direction plus idle; when that passes, it looks again, since the
// other direction may have moved bytes meanwhile, and gives up only if it
// has not.
type idleCopier struct {
	idle  time.Duration
	bufs  *sync.Pool // of *[bigBuffer]byte
	start time.Time  // with a monotonic reading: wall clock steps do not matter
	last  atomic.Int64
}

// moved records that bytes moved now.
func (ic *idleCopier) moved() { ic.last.Store(int64(time.Since(ic.start))) }

// deadline is when the connection is idle unless more bytes move.
func (ic *idleCopier) deadline() time.Time {
	return ic.start.Add(time.Duration(ic.last.Load()) + ic.idle)
}

func (ic *idleCopier) expired() bool { return !time.Now().Before(ic.deadline()) }

// copy copies src to dst until EOF (nil), an error, or errIdle.
func (ic *idleCopier) copy(dst, src net.Conn) error {
	small := make([]byte, smallBuffer)
	buf := small
	var big *[bigBuffer]byte
	defer func() {
		if big != nil {
			ic.bufs.Put(big)
		}
	}()
	for {
		if err := src.SetReadDeadline(ic.deadline()); err != nil {
			return err
		}
		n, err := src.Read(buf)
		if n > 0 {
			ic.moved()
			if werr := ic.write(dst, buf[:n]); werr != nil {
				return werr
			}
			switch {
			case n == len(buf) && big == nil: // more is waiting: take bigger bites
				big, _ = ic.bufs.Get().(*[bigBuffer]byte)
				if big == nil {
					big = new([bigBuffer]byte)
				}
				buf = big[:]
			case n < smallBuffer && big != nil: // drained: give the big buffer back
				ic.bufs.Put(big)
				big, buf = nil, small
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil
		case !isTimeout(err):
			return err
		case ic.expired():
			return errIdle
		}
	}
}

// write writes p to dst, waiting as long as bytes move either way.
func (ic *idleCopier) write(dst net.Conn, p []byte) error {
	for {
		if err := dst.SetWriteDeadline(ic.deadline()); err != nil {
			return err
		}
		n, err := dst.Write(p)
		if n > 0 {
			ic.moved()
		}
		p = p[n:]
		switch {
		case err == nil:
			return nil
		case !isTimeout(err):
			return err
		case ic.expired():
			return errIdle
		}
	}
}
