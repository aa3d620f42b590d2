package cmdline

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
)

// ListenError explains a failure to listen on addr, given with flagName,
// for what (e.g. "HTTPS"): a port in use and a privileged port get what
// to do, anything else the address and the flag that changes it.
func ListenError(err error, addr, flagName, what string) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("port %s is already in use, so %s cannot be served there: stop what listens on it, or choose another address with %s", PortOf(addr), what, flagName)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission):
		return fmt.Errorf("no permission to listen on port %s for %s: run as root (or grant CAP_NET_BIND_SERVICE), or choose another address with %s", PortOf(addr), what, flagName)
	}
	return fmt.Errorf("listening on %s for %s (change it with %s): %w", addr, what, flagName, err)
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

// Plural is "1 thing" or "N things".
func Plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
