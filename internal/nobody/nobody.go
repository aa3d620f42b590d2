// Package nobody refuses HTTP request bodies without reading them, for
// listeners whose requests take none (the certificate API, the metrics
// and status pages).
//
// net/http reads what is left of a request body after the handler has
// answered, up to 256 KiB, so that it can reuse the connection: a client
// that announces a body (Content-Length: 1000) and never sends it holds
// the connection and its goroutine for as long as it likes, unless the
// server has a ReadTimeout, which would also cut long handlers short (an
// expired read deadline cancels the request's context). Drop cuts only
// the requests that carry a body.
package nobody

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// Drop makes sure r's body is never read: reads fail at once, and the
// connection closes after the answer. Call it before writing the answer.
//
// The close goes through http.MaxBytesReader, which "tells the
// ResponseWriter to close the connection" once past its limit (here over
// a byte in memory, never the body): net/http then half-closes and
// lingers half a second before closing, so that a client still sending
// its body reads the answer rather than a connection reset.
func Drop(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	_, _ = http.MaxBytesReader(w, io.NopCloser(strings.NewReader("x")), 0).Read(make([]byte, 1))
	w.Header().Set("Connection", "close")
}

// Has reports whether r carries a body: a Content-Length above zero, or
// (HTTP/1) a chunked one. An HTTP/2 request of unknown length is not
// counted: some clients end a GET's stream with an empty DATA frame, and
// HTTP/2 resets a stream whose body is left unread instead of reading it.
func Has(r *http.Request) bool {
	return r.ContentLength > 0 || r.ContentLength < 0 && r.ProtoMajor < 2
}

// Refuse wraps h: a request with a body gets 413, unread, and its
// connection closed; the others go to h.
func Refuse(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Has(r) {
			Drop(w)
			http.Error(w, "this server takes no request body", http.StatusRequestEntityTooLarge)
			return
		}
		h.ServeHTTP(w, r)
	})
}
