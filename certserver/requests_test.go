package certserver_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestRequests: every answered request is counted once, by endpoint and
// the status code the client got, whichever part of the handler answered
// it (the ACME challenge and metrics handlers included).
func TestRequests(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	h := &certserver.Handler{Manager: m, Tokens: []string{token1}, Audit: slog.New(slog.DiscardHandler),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })}
	if got := h.Requests(); len(got) != 0 {
		t.Fatalf("Requests before any = %v, want none", got)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	for _, rq := range []struct{ path, token string }{
		{"/healthz", ""},
		{"/v1/certificates/a.test", ""},
		{"/v1/certificates/a.test", "wrong-token-0123456789"},
		{"/v1/certificates/a.test", token1},
		{"/v1/certificates/a.test?format=pem", token1},
		{"/v1/certificates/b.test", token1},
		{"/v1/ocsp/a.test", token1},
		{"/metrics", token1},
		{"/.well-known/acme-challenge/nothing", ""},
		{"/v2/x", token1},
	} {
		get(t, s.URL+rq.path, rq.token)
	}
	want := []certserver.RequestCount{
		{Endpoint: "healthz", Code: 200, N: 1},
		{Endpoint: "acme-challenge", Code: 404, N: 1},
		{Endpoint: "certificates", Code: 200, N: 2},
		{Endpoint: "certificates", Code: 401, N: 2},
		{Endpoint: "certificates", Code: 403, N: 1},
		{Endpoint: "ocsp", Code: 404, N: 1},
		{Endpoint: "metrics", Code: 418, N: 1},
		{Endpoint: "other", Code: 404, N: 1},
	}
	got := h.Requests()
	order := func(a, b certserver.RequestCount) int {
		if a.Endpoint != b.Endpoint {
			if a.Endpoint < b.Endpoint {
				return -1
			}
			return 1
		}
		return a.Code - b.Code
	}
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	if !slices.Equal(got, want) {
		t.Errorf("Requests =\n%v\nwant\n%v", got, want)
	}
}
