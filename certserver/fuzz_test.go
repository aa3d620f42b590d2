package certserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/hostname"
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
			if n, err := (hostname.Normalizer{AllowIP: true}).Normalize(req.name); err != nil || n != req.name || strings.Contains(req.name, "/") {
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

// FuzzTokenLine feeds arbitrary token-file lines to the parser: nothing
// panics; an accepted line has a token of at least 16 characters and no
// space or byte-order mark; a scope allows only names under its patterns, and never one that
// normalisation refuses.
func FuzzTokenLine(f *testing.F) {
	for _, s := range []string{
		"0123456789abcdef", "0123456789abcdef names=a.test", "0123456789abcdef  names=*.shop.test,api.test",
		"0123456789abcdef names=", "0123456789abcdef names=a..b", "names=a.test", "0123456789abcdef names=a.test names=b.test",
		"0123456789abcdef names=*.test,10.0.0.1,xn--bcher-kva.test", "0123456789abcdef names=B\u00fccher.TEST.",
		"\ufeff0123456789abcdef", "0123456789abcdef\ufeff names=a.test",
	} {
		f.Add(s, "www.shop.test")
	}
	f.Fuzz(func(t *testing.T, line, name string) {
		secret, sc, err := parseToken(line)
		if err != nil {
			return
		}
		if len(secret) < minTokenLen || strings.ContainsAny(secret, " \t\ufeff") {
			t.Fatalf("parseToken(%q) accepted token %q", line, secret)
		}
		n, nerr := hostname.Normalize(name)
		if nerr != nil || n != name {
			return
		}
		if got := sc.outside([]string{name}); (got == "") != sc.allows(name) {
			t.Fatalf("scope %q: outside([%q]) = %q, allows = %v", sc.text, name, got, sc.allows(name))
		}
		if sc.outside([]string{"*." + name}) == "" && !sc.allows("x."+name) {
			t.Fatalf("scope %q lets its token hold *.%s's key, but not fetch x.%[2]s", sc.text, name)
		}
		if sc.allows(name) && sc != nil {
			if _, ok := sc.exact[name]; ok {
				return
			}
			under := false
			for zone := range sc.suffixes {
				under = under || strings.HasSuffix(name, "."+zone)
			}
			if !under {
				t.Fatalf("scope %q allows %q, which no pattern covers", sc.text, name)
			}
		}
	})
}
