package proxy

import (
	"context"
	"fmt"
	"net"
	"time"
)

// DialBackend connects to backend (as BackendURL takes it) once, within
// timeout, and closes the connection: it tells whether anything listens
// there, for a front-end that wants to say so at start. A backend is not
// required to be up before the proxy, so a failure is for a message, not
// a refusal. The returned address is the HOST:PORT dialled (port 80 or
// 443 by the scheme when the URL has none).
func DialBackend(ctx context.Context, backend string, timeout time.Duration) (addr string, err error) {
	s, err := BackendURL(backend)
	if err != nil {
		return "", err
	}
	u, err := parseBackend(s)
	if err != nil {
		return "", err
	}
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	addr = net.JoinHostPort(u.Hostname(), port)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return addr, fmt.Errorf("backend %s: %w", addr, err)
	}
	return addr, conn.Close()
}
