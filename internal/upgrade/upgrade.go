// Package upgrade lets a long-running certkeeper command restart or
// upgrade without refusing a connection: its listening sockets come from
// its parent (a certkeeper that is upgrading, or systemd socket
// activation) when there are any, and on SIGUSR2 it starts the binary now
// at its executable's path with those sockets, waits until the new process
// says it is ready, and only then lets the caller drain and exit. A new
// binary that fails to start (exits, or is not ready in time) is killed
// and the old process keeps serving.
//
// The kernel keeps one listening socket for both processes: connections
// that arrive while both hold it wait in its accept queue for whichever
// accepts first, so none is refused.
//
// It is for package main only: it reads and sets the process environment.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Environment variables between an upgrading process and its successor,
// and those of systemd socket activation (sd_listen_fds(3)).
const (
	envFDs     = "CERTKEEPER_LISTEN_FDS" // "name=fd,name=fd" of inherited listeners
	envReadyFD = "CERTKEEPER_READY_FD"   // fd the new process writes "ready" to
	envSDFDs   = "LISTEN_FDS"
	envSDPID   = "LISTEN_PID"
	envSDNames = "LISTEN_FDNAMES"
	sdFirstFD  = 3 // SD_LISTEN_FDS_START
)

// ReadyTimeout is how long Upgrade waits for the new process to be ready.
const ReadyTimeout = time.Minute

// Grace is how long StopAccepting waits for the connections this process
// accepted last to send their requests. net/http's Server.Shutdown closes
// a connection whose request it reads after Shutdown began without an
// answer, so draining at once would fail the few requests that arrived
// just before the hand-over.
const Grace = time.Second

// Upgrader hands listeners down from one process to the next. Create it
// with New at start-up, take listeners with Listen, call Ready once
// serving, and Upgrade on the upgrade signal.
type Upgrader struct {
	// Logger receives the upgrade's progress. Nil means slog.Default().
	Logger *slog.Logger

	mu        sync.Mutex              // guards the fields below
	inherited map[string]net.Listener // by name, not yet taken
	unnamed   []net.Listener          // systemd sockets without names, matched by address
	active    []named                 // every listener handed out, for the next process
	readyFile *os.File                // the pipe to the parent, until Ready
	upgrading bool
	exe       string // the executable's path at start-up
	exeErr    error
}

type named struct {
	name string
	ln   net.Listener
}

// New reads the listeners this process inherited, from an upgrading
// certkeeper or from systemd, and clears the variables that described
// them so that no later child misreads them.
func New(logger *slog.Logger) (*Upgrader, error) {
	u := &Upgrader{Logger: logger, inherited: map[string]net.Listener{}}
	// The path, taken now: later, os.Executable follows the running file,
	// which an upgrade renames away or deletes.
	u.exe, u.exeErr = os.Executable()
	if v := os.Getenv(envFDs); v != "" {
		for _, item := range strings.Split(v, ",") {
			name, fdText, ok := strings.Cut(item, "=")
			fd, err := strconv.Atoi(fdText)
			if !ok || err != nil || fd < sdFirstFD {
				return nil, fmt.Errorf("%s: bad entry %q", envFDs, item)
			}
			ln, err := fileListener(fd, name)
			if err != nil {
				return nil, err
			}
			u.inherited[name] = ln
		}
	}
	if v := os.Getenv(envReadyFD); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil || fd < sdFirstFD {
			return nil, fmt.Errorf("%s: bad fd %q", envReadyFD, v)
		}
		u.readyFile = os.NewFile(uintptr(fd), "ready")
	}
	if pid, _ := strconv.Atoi(os.Getenv(envSDPID)); pid == os.Getpid() {
		n, _ := strconv.Atoi(os.Getenv(envSDFDs))
		names := strings.Split(os.Getenv(envSDNames), ":")
		for i := range n {
			name := ""
			if i < len(names) {
				name = names[i]
			}
			ln, err := fileListener(sdFirstFD+i, "systemd:"+name)
			if err != nil {
				return nil, err
			}
			if name != "" && name != "unknown" {
				u.inherited[name] = ln
			} else {
				u.unnamed = append(u.unnamed, ln)
			}
		}
	}
	for _, k := range []string{envFDs, envReadyFD, envSDFDs, envSDPID, envSDNames} {
		os.Unsetenv(k)
	}
	return u, nil
}

func fileListener(fd int, name string) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), name)
	if f == nil {
		return nil, fmt.Errorf("inherited listener %s: fd %d is not open", name, fd)
	}
	defer f.Close() // FileListener dups it
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("inherited listener %s (fd %d): %w", name, fd, err)
	}
	return ln, nil
}

// Listen returns the listener called name: the inherited one of that
// name, else an inherited systemd socket bound to addr, else a new one on
// addr. An inherited listener bound elsewhere than addr (the address
// changed in the configuration before an upgrade) is used all the same,
// with a warning: the old process still holds it, so addr may be taken.
func (u *Upgrader) Listen(name, addr string) (net.Listener, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ln, ok := u.inherited[name]
	if ok {
		delete(u.inherited, name)
		if !boundTo(ln, addr) {
			u.logger().Warn("listening on the inherited socket, not on the address configured: restart certkeeper to listen there",
				slog.String("name", name), slog.String("addr", ln.Addr().String()), slog.String("configured", addr))
		}
	} else if i := u.matchUnnamed(addr); i >= 0 {
		ln = u.unnamed[i]
		u.unnamed = append(u.unnamed[:i], u.unnamed[i+1:]...)
	} else {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, err
		}
	}
	u.active = append(u.active, named{name, ln})
	return ln, nil
}

// Where is the address the listener called name is bound to: the
// inherited socket's when an upgrade handed one over under that name (in
// use or still to be), else addr, the address configured.
func (u *Upgrader) Where(name, addr string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	ln, ok := u.inherited[name]
	for _, a := range u.active {
		if a.name == name {
			ln, ok = a.ln, true
		}
	}
	if !ok || boundTo(ln, addr) {
		return addr
	}
	return ln.Addr().String()
}

// matchUnnamed finds the unnamed systemd socket bound to addr.
func (u *Upgrader) matchUnnamed(addr string) int {
	for i, ln := range u.unnamed {
		if _, port, err := net.SplitHostPort(addr); err == nil && port != "" && port != "0" && boundTo(ln, addr) {
			return i
		}
	}
	return -1
}

// boundTo reports whether ln is bound to addr: the same port (any, for
// port 0; a service name such as https as /etc/services numbers it) and
// host (any, for an empty host; a loopback address for localhost). Other
// host names are not resolved: they do not match.
func boundTo(ln net.Listener, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	h, p, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return false
	}
	if port != "" && port != "0" {
		n, err := (&net.Resolver{PreferGo: true}).LookupPort(context.Background(), "tcp", port)
		if err != nil || strconv.Itoa(n) != p {
			return false
		}
	}
	ip := net.ParseIP(h)
	return host == "" || host == h || ip != nil && (ip.Equal(net.ParseIP(host)) || host == "localhost" && ip.IsLoopback())
}

// Ready tells the process that started this one, if it was an upgrading
// certkeeper, that this one serves now, and tells systemd (sd_notify
// READY=1) when it supervises this process. Inherited listeners nobody
// took are closed.
func (u *Upgrader) Ready() error {
	u.mu.Lock()
	f := u.readyFile
	u.readyFile = nil
	for name, ln := range u.inherited {
		u.logger().Warn("closing an inherited listener no one uses", slog.String("name", name), slog.String("addr", ln.Addr().String()))
		ln.Close()
		delete(u.inherited, name)
	}
	u.mu.Unlock()
	var errs []error
	if f != nil {
		if _, err := f.Write([]byte("ready\n")); err != nil {
			errs = append(errs, fmt.Errorf("telling the old process we are ready: %w", err))
		}
		f.Close()
	}
	if err := Notify("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid())); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// StopAccepting closes this process's copies of its listeners after a
// successful Upgrade (the sockets stay open in the new process, which
// accepts every new connection from now on) and waits Grace, so that the
// connections already accepted here have sent their requests before the
// caller drains.
func (u *Upgrader) StopAccepting() {
	u.mu.Lock()
	for _, a := range u.active {
		a.ln.Close()
	}
	u.mu.Unlock()
	time.Sleep(Grace)
}

func (u *Upgrader) logger() *slog.Logger {
	if u.Logger != nil {
		return u.Logger
	}
	return slog.Default()
}
