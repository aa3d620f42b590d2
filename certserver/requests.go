package certserver

import (
	"net/http"
	"sync/atomic"
)

// endpoints names each kind of request in RequestCount.Endpoint.
var endpoints = [...]string{
	kindNone:        "other",
	kindHealth:      "healthz",
	kindChallenge:   "acme-challenge",
	kindCertificate: "certificates",
	kindOCSP:        "ocsp",
	kindMetrics:     "metrics",
}

// RequestCount is how many requests to one endpoint the Handler answered
// with one status code.
type RequestCount struct {
	// Endpoint is "certificates", "ocsp", "metrics", "healthz",
	// "acme-challenge", or "other": a path the API does not serve, or a
	// request refused before it was routed (a path over MaxPath).
	Endpoint string
	// Code is the HTTP status code answered.
	Code int
	// N is how many such requests were answered since the Handler started.
	N uint64
}

// requestCounts counts answered requests by kind and status code (100 to
// 599): atomic adds, so counting costs a request no lock and no
// allocation.
type requestCounts [len(endpoints)][500]atomic.Uint64

// count records one answered request.
func (h *Handler) count(kind, code int) {
	if kind < 0 || kind >= len(endpoints) {
		kind = kindNone
	}
	h.counts[kind][min(max(code, 100), 599)-100].Add(1)
}

// Requests returns how many requests the Handler answered, by endpoint
// and status code, for those answered at least once (in endpoint order,
// then by code). Metrics read it when scraped
// (metrics.Metrics.RegisterAPI); it does not slow requests down.
func (h *Handler) Requests() []RequestCount {
	h.init()
	var out []RequestCount
	for kind := range h.counts {
		for i := range h.counts[kind] {
			if n := h.counts[kind][i].Load(); n > 0 {
				out = append(out, RequestCount{Endpoint: endpoints[kind], Code: i + 100, N: n})
			}
		}
	}
	return out
}

// serveCounted serves r with next and returns the status code it
// answered (200 when it wrote no header).
func serveCounted(next http.Handler, w http.ResponseWriter, r *http.Request) int {
	cw := &codeWriter{ResponseWriter: w}
	next.ServeHTTP(cw, r)
	if cw.code == 0 {
		return http.StatusOK
	}
	return cw.code
}

// codeWriter remembers the status code written through it.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) {
	if c.code == 0 && code >= 200 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *codeWriter) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return c.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer
// (flushing, deadlines).
func (c *codeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
