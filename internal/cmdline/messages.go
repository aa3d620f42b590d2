package cmdline

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// ListenError explains a failure to listen on addr, given with flagName,
// for what (e.g. "HTTPS"): a port in use and a privileged port get what
// to do, anything else the address and the flag that changes it.
func ListenError(err error, addr, flagName, what string) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("port %s is already in use, so %s cannot be served there: %s, or choose another address with %s", PortOf(addr), what, InUseAdvice(addr), flagName)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission):
		return fmt.Errorf("no permission to listen on port %s for %s: run as root (or grant CAP_NET_BIND_SERVICE), or choose another address with %s", PortOf(addr), what, flagName)
	}
	return fmt.Errorf("listening on %s for %s (change it with %s): %w", addr, what, flagName, err)
}

// InUseAdvice says what to do about addr's port being in use: stop what
// listens on it, or, when nothing does (a connection to it is refused),
// that one of this host's own outgoing connections holds the port, as
// happens to a port in the range the system picks them from (Linux:
// 32768-60999); they come and go, so a port below that range is the
// lasting fix.
func InUseAdvice(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "stop what listens on it"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 300*time.Millisecond)
	if err == nil {
		c.Close()
		return "stop what listens on it"
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return "stop what listens on it"
	}
	return "nothing listens on it: an outgoing connection of this host holds it (the system lends ports to outgoing connections, 32768-60999 on Linux), so use a port below 32768"
}

// PortOf is addr's port, or addr when it has none.
func PortOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return port
	}
	return addr
}

// ShellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_./:@%+= (so a path printed in a suggested command
// can be pasted as it is).
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@%+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// AsAdmin is cmd, a command line that changes the whole machine (such as
// trusting a CA), as the user running this would type it: as it is for
// root, after sudo for another user, and on Windows from an Administrator
// prompt, which has no sudo.
func AsAdmin(cmd string) string {
	switch {
	case runtime.GOOS == "windows":
		return cmd + " (from an Administrator prompt)"
	case os.Geteuid() == 0:
		return cmd
	}
	return "sudo " + cmd
}

// Plural is "1 thing" or "N things".
func Plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// MapErrors applies f to each error joined in err (errors.Join), or to
// err alone, and joins what f returns: how a command names the flag of
// each of the setting errors a library reports at once.
func MapErrors(err error, f func(error) error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = f(e)
	}
	return errors.Join(out...)
}

// Prefix is err said of the flag name ("--to"): "--to: err", unless err
// names that flag or one of its family already ("--to-key-file: ..."),
// which says more.
func Prefix(name string, err error) error {
	flag := strings.TrimPrefix(name, "--")
	for _, f := range FlagsIn(err.Error()) {
		if f == flag || strings.HasPrefix(f, flag+"-") {
			return err
		}
	}
	return fmt.Errorf("%s: %w", name, err)
}
