//go:build unix

package upgrade

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Signals are the signals that ask for an upgrade: SIGUSR2.
var Signals = []os.Signal{syscall.SIGUSR2}

// dupListener returns a duplicate of ln's socket descriptor, closed on
// exec: StartProcess places it at the child's descriptor 3 onwards (a
// dup2, which clears the flag there), and no process started meanwhile (a
// deploy hook) or the child itself inherits it at its own number. A plain
// dup leaked there: each upgraded process held every listening socket
// twice, so after its SIGTERM the port went on accepting (into a queue no
// one read) until it exited.
func dupListener(ln net.Listener) (uintptr, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("%T has no descriptor to hand over", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var nfd int
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return 0, err
	}
	if derr != nil {
		return 0, derr
	}
	return uintptr(nfd), nil
}

// Upgrade starts the binary at this process's executable path, with the
// same arguments and the listeners handed out by Listen, and waits until
// it is ready. It returns the new process's ID; the caller then stops
// accepting, drains its connections and exits. On error the new process
// has been stopped and this one should go on serving.
func (u *Upgrader) Upgrade(ctx context.Context) (int, error) {
	u.mu.Lock()
	if u.upgrading {
		u.mu.Unlock()
		return 0, errors.New("an upgrade is already under way")
	}
	u.upgrading = true
	active := append([]named(nil), u.active...)
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		u.upgrading = false
		u.mu.Unlock()
	}()

	exe, err := u.exe, u.exeErr
	if err != nil {
		return 0, fmt.Errorf("finding the executable: %w", err)
	}
	pid, pr, err := u.start(exe, active)
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	proc, err := os.FindProcess(pid)
	if err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() {
		st, err := proc.Wait()
		if err == nil && !st.Success() {
			err = errors.New(st.String())
		}
		exited <- err
	}()
	if err := waitReady(ctx, proc, pr, exited); err != nil {
		return 0, err
	}
	// The new process is on its own now; this one must not wait for it.
	go func() { <-exited }()
	if err := Notify("MAINPID=" + strconv.Itoa(pid)); err != nil {
		u.logger().Warn("telling systemd the new main PID", slog.Any("err", err))
	}
	u.logger().Info("upgrade: the new process is ready", slog.Int("pid", pid))
	return pid, nil
}

// start starts exe with this process's arguments and the listeners of
// active, and returns its process ID and the read end of the pipe on which
// it says "ready". The caller closes the pipe.
func (u *Upgrader) start(exe string, active []named) (int, *os.File, error) {
	// The child gets raw descriptors through syscall.StartProcess:
	// os/exec would call File.Fd on them, which puts the socket (and with
	// it this process's listener, which shares its flags) into blocking
	// mode, and a blocking accept in this process could then take a
	// connection after it stopped serving.
	var fds []uintptr
	defer func() {
		for _, fd := range fds {
			syscall.Close(int(fd))
		}
	}()
	var names []string
	for _, a := range active {
		fd, err := dupListener(a.ln)
		if err != nil {
			return 0, nil, fmt.Errorf("handing over listener %s: %w", a.name, err)
		}
		fds = append(fds, fd)
		names = append(names, a.name+"="+strconv.Itoa(sdFirstFD+len(fds)-1))
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, nil, err
	}
	readyFD := sdFirstFD + len(fds)
	env := append(os.Environ(), envFDs+"="+strings.Join(names, ","), envReadyFD+"="+strconv.Itoa(readyFD))
	u.logger().Info("upgrade: starting the new process", slog.String("path", exe), slog.Any("listeners", names))
	files := append([]uintptr{0, 1, 2}, fds...)
	files = append(files, pw.Fd())
	pid, _, err := syscall.StartProcess(exe, append([]string{exe}, os.Args[1:]...), &syscall.ProcAttr{Env: env, Files: files})
	pw.Close() // the child holds its own copy; EOF on pr now means it exited
	if err != nil {
		pr.Close()
		return 0, nil, fmt.Errorf("starting %s: %w", exe, err)
	}
	return pid, pr, nil
}

// waitReady waits until the new process proc says "ready" on pr. If it
// exits (exited), is not ready within ReadyTimeout, or ctx ends first, it
// is stopped and the error says why.
func waitReady(ctx context.Context, proc *os.Process, pr *os.File, exited <-chan error) error {
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(pr).ReadString('\n')
		switch {
		case line == "ready\n":
			ready <- nil
		case err != nil:
			ready <- fmt.Errorf("the new process ended before it was ready")
		default:
			ready <- fmt.Errorf("the new process said %q instead of ready", line)
		}
	}()
	timer := time.NewTimer(ReadyTimeout)
	defer timer.Stop()
	fail := func(err error) error {
		_ = proc.Kill()
		<-exited
		return err
	}
	select {
	case err := <-ready:
		if err != nil {
			select {
			case werr := <-exited:
				return fmt.Errorf("%w (%v)", err, werr)
			case <-time.After(5 * time.Second):
				return fail(err)
			}
		}
		return nil
	case err := <-exited:
		return fmt.Errorf("the new process ended before it was ready (%v)", err) // as when the pipe closes first
	case <-timer.C:
		return fail(fmt.Errorf("the new process was not ready within %s", ReadyTimeout))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// Notify sends state to systemd's notification socket ($NOTIFY_SOCKET,
// sd_notify(3)); without one it does nothing. certkeeper's unit has
// Type=notify: READY=1 once serving, MAINPID= after an upgrade.
func Notify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // an abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}
