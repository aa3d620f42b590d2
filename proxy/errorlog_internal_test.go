package proxy

import (
	"log/slog"
	"testing"
)

// TestErrorLogLevel: what net/http logs about a client's own failure
// (a TLS handshake it abandoned, a scanner's bytes, an HTTP/2 protocol
// violation) is at debug: anyone on the internet can cause one per
// connection, and at warn each was a log line an attacker wrote at will
// (trial 30: 50 connections sending a malformed CONTINUATION sequence gave
// 50 warnings). Panics stay errors, and the server's own failures warnings.
// A backend's answer cut short is at debug here: the Handler logs it with
// the site, backend and path this line lacks.
func TestErrorLogLevel(t *testing.T) {
	for msg, want := range map[string]slog.Level{
		"http: TLS handshake error from 192.0.2.1:5555: EOF":                                          slog.LevelDebug,
		"http2: server: error reading preface from client 192.0.2.1:5555: EOF":                        slog.LevelDebug,
		"http2: server connection error from 192.0.2.1:5555: connection error: PROTOCOL_ERROR":        slog.LevelDebug,
		"http2: server connection error from [2001:db8::1]:5555: connection error: ENHANCE_YOUR_CALM": slog.LevelDebug,
		"http: panic serving 192.0.2.1:5555: boom":                                                    slog.LevelError,
		"http: Accept error: accept tcp [::]:443: accept4: too many open files; retrying in 5ms":      slog.LevelWarn,
		"httputil: ReverseProxy read error during body copy: unexpected EOF":                          slog.LevelDebug, // Handler.noteCut says it, with context
		"httputil: ReverseProxy write error during body copy: broken pipe":                            slog.LevelWarn,
	} {
		if got := errorLogLevel(msg); got != want {
			t.Errorf("errorLogLevel(%q) = %v, want %v", msg, got, want)
		}
	}
}
