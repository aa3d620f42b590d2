package certserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// FuzzParseRequest feeds arbitrary request targets to the parser and to
// the whole handler (authenticated, over a Manager that allows no name):
// nothing panics, a name that reaches the Manager is normalised and has
// no slash, and every answer is one the API documents.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"/v1/certificates/a.test", "/v1/certificates/A.TEST.?format=pem", "/v1/ocsp/a.test",
		"/v1/certificates/a..b", "/v1/certificates/%2e%2e%2fetc", "/healthz", "/.well-known/acme-challenge/x",
		"/v1/certificates/xn--bcher-kva.test?format=json", "/v1/certificates/b\u00fccher.test", "/v1/certificates/*.a.test",
		"/v1/certificates/" + strings.Repeat("a", 2000), "/v1/certificates/a.test?format=pem&x=1",
	} {
		f.Add("GET", s)
	}
	f.Add("POST", "/v1/certificates/a.test")
	m := &certkeeper.Manager{Storage: filestore.New(f.TempDir())}
	f.Cleanup(func() { m.Close() })
	h := &Handler{Manager: m, Tokens: []string{"fuzz-token-0123456789"}}
	documented := map[int]bool{200: true, 400: true, 401: true, 403: true, 404: true, 405: true, 413: true, 414: true, 503: true}
	f.Fuzz(func(t *testing.T, method, target string) {
		path, query, _ := strings.Cut(target, "?")
		req := parseRequest(method, path, query, len(target), DefaultMaxPath)
		if req.status == 0 && (req.kind == kindCertificate || req.kind == kindOCSP) {
			if n, err := policy.Normalize(req.name); err != nil || n != req.name || strings.Contains(req.name, "/") {
				t.Fatalf("parseRequest(%q, %q) gave name %q, not a normalised name", method, target, req.name)
			}
		}
		if req.status != 0 && !documented[req.status] {
			t.Fatalf("parseRequest(%q, %q) = status %d, not documented", method, target, req.status)
		}
		r, err := http.NewRequest(method, "http://127.0.0.1"+target, nil)
		if err != nil || !strings.HasPrefix(target, "/") {
			return
		}
		r.Header.Set("Authorization", "Bearer fuzz-token-0123456789")
		w := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(w, r)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s %q: no answer within 5 s", method, target)
		}
		if !documented[w.Code] {
			t.Fatalf("%s %q answered %d, not a documented status", method, target, w.Code)
		}
	})
}
