package alpnproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper/internal/atomicfile"
	"github.com/certkeeper/certkeeper/internal/fileowner"
)

// A Pidfile is the file holding the process ID of a running proxy: where
// the process that starts a proxy and the one that stops it meet. [Run]
// writes it once the proxy is ready and removes it when it stops;
// [Pidfile.Stop] signals the process it names.
type Pidfile string

// DefaultPidfile is the pidfile used when none is chosen:
// $ACME_ALPN_PROXY_PIDFILE (letsdebug/acme-alpn-proxy's variable, so that
// scripts written for it keep working), else certkeeper-alpn-proxy.pid in
// /run for root, else in $XDG_RUNTIME_DIR, else in the temporary
// directory, named with the user ID there (that directory is shared, and
// the ID keeps users apart).
func DefaultPidfile() Pidfile {
	const name = "certkeeper-alpn-proxy.pid"
	if p := os.Getenv("ACME_ALPN_PROXY_PIDFILE"); p != "" {
		return Pidfile(p)
	}
	if os.Geteuid() == 0 {
		return Pidfile(filepath.Join("/run", name))
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return Pidfile(filepath.Join(d, name))
	}
	return Pidfile(filepath.Join(os.TempDir(), fmt.Sprintf("certkeeper-alpn-proxy-%d.pid", os.Getuid())))
}

// Write writes pid to the pidfile atomically: a reader never sees half a
// number.
func (p Pidfile) Write(pid int) error {
	if err := atomicfile.WriteFile(string(p), fmt.Appendf(nil, "%d\n", pid), 0o644); err != nil {
		return fmt.Errorf("writing pidfile %s: %w", p, err)
	}
	return nil
}

// Read returns the process ID in the pidfile; a missing file wraps
// fs.ErrNotExist. A pidfile another user owns is refused: in a shared
// directory (the temporary directory) anyone may have written it, naming
// any of this user's processes for Stop to signal. So is a symbolic link,
// which anyone may make there too, to a file of this user's that holds a
// number (another pidfile), whose owner the check would take (a security
// trial's stop signalled an unrelated process that way).
func (p Pidfile) Read() (int, error) {
	link, err := os.Lstat(string(p))
	if err != nil {
		return 0, fmt.Errorf("reading pidfile: %w", err)
	}
	if link.Mode()&fs.ModeSymlink != 0 {
		return 0, fmt.Errorf("pidfile %s is a symbolic link: it may point at any file that holds a number, so it is not used; remove it", p)
	}
	f, err := os.Open(string(p))
	if err != nil {
		return 0, fmt.Errorf("reading pidfile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("reading pidfile: %w", err)
	}
	if !os.SameFile(link, fi) { // replaced between the two looks
		return 0, fmt.Errorf("pidfile %s changed while it was read: try again", p)
	}
	if uid, ok := fileowner.UID(fi); ok && uid != os.Geteuid() {
		return 0, fmt.Errorf("pidfile %s is owned by user %d, not by this user (%d): it may name any process, so it is not used; remove it if it is stale", p, uid, os.Geteuid())
	}
	data, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return 0, fmt.Errorf("reading pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s holds %q, not a process ID", p, data)
	}
	return pid, nil
}

// Remove removes the pidfile if it still names pid: a newer proxy's
// pidfile is left alone, and so is one that cannot be read. A pidfile
// already gone is not an error.
func (p Pidfile) Remove(pid int) error {
	if got, err := p.Read(); err != nil || got != pid {
		return nil
	}
	if err := os.Remove(string(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing pidfile: %w", err)
	}
	return nil
}

// StopResult says what [Pidfile.Stop] found.
type StopResult int

const (
	// NotRunning: there is no pidfile, so there is nothing to stop.
	NotRunning StopResult = iota
	// Stale: the pidfile names a process that no longer runs, or that
	// exited without removing it; the caller removes it
	// ([Pidfile.Remove]).
	Stale
	// Stopped: the process was signalled and has exited.
	Stopped
	// Reused: the pidfile names a running process that started after the
	// pidfile was written, so it is not the proxy that wrote it: the
	// system gave the dead proxy's process ID to another program. It was
	// not signalled; the caller removes the pidfile ([Pidfile.Remove]).
	Reused
)

// reuseSlack is how much later than its pidfile's modification time a
// process may seem to have started and still be taken as its writer: the
// boot time is whole seconds, and the clock may have been stepped since.
const reuseSlack = 10 * time.Second

// StartedAfter reports whether process pid started after the pidfile was
// written (by more than a few seconds): then it cannot be the proxy that
// wrote it, whose process ID the system has handed out again since that
// proxy died without removing its pidfile (SIGKILL, a crash, a reboot). It
// reports false when it cannot tell (no /proc, or no pidfile).
func (p Pidfile) StartedAfter(pid int) bool {
	fi, err := os.Lstat(string(p))
	if err != nil {
		return false
	}
	start, ok := processStart(pid)
	return ok && start.After(fi.ModTime().Add(reuseSlack))
}

// Running reports whether the proxy of the pidfile, process pid, runs:
// the process exists and is not another program that got its process ID
// ([Pidfile.StartedAfter]).
func (p Pidfile) Running(pid int) bool { return ProcessAlive(pid) && !p.StartedAfter(pid) }

// Stop sends SIGTERM to the process in the pidfile (what a proxy run by
// [Run] stops on) and waits, up to timeout, until it has exited, returning
// its process ID. A proxy drains its connections and removes its pidfile
// before it exits, so Stop returns once that is done. A process that
// started after the pidfile was written is another program's, and is not
// signalled (Reused).
func (p Pidfile) Stop(ctx context.Context, timeout time.Duration) (StopResult, int, error) {
	pid, err := p.Read()
	if errors.Is(err, fs.ErrNotExist) {
		return NotRunning, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	if ProcessAlive(pid) && p.StartedAfter(pid) {
		return Reused, pid, nil
	}
	if what, other := otherProgram(pid); other {
		return 0, pid, fmt.Errorf("process %d of %s is not an alpn-proxy (%.80s): not signalled; is the pidfile right?", pid, p, what)
	}
	proc, err := os.FindProcess(pid)
	if err == nil {
		err = proc.Signal(syscall.SIGTERM)
	}
	if errors.Is(err, os.ErrProcessDone) {
		return Stale, pid, nil
	}
	if err != nil {
		return 0, pid, fmt.Errorf("signalling process %d from %s: %w", pid, p, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if !ProcessAlive(pid) {
			if _, err := os.Stat(string(p)); err == nil {
				return Stale, pid, nil
			}
			return Stopped, pid, nil
		}
		select {
		case <-ctx.Done():
			return 0, pid, fmt.Errorf("process %d (pidfile %s) still running after %s: %w", pid, p, timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// ProcessAlive reports whether process pid exists (signal 0 checks without
// sending anything; EPERM means it exists but belongs to another user).
func ProcessAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}
