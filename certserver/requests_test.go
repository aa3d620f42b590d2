package certserver_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/testsvc"
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

// TestRefusedTokenLogged: a request with a token the server does not
// hold is logged (it was in neither log, trial 21), at warn once a minute
// with the count, at debug after that, and never with the token.
func TestRefusedTokenLogged(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	logs := &testsvc.Buffer{}
	h := &certserver.Handler{Manager: m, Tokens: []string{token1}, Audit: slog.New(slog.DiscardHandler),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	const wrong = "wrong-token-0123456789"
	for range 3 {
		if resp, _ := get(t, s.URL+"/v1/certificates/a.test", wrong); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET with a wrong token = %d, want 401", resp.StatusCode)
		}
	}
	get(t, s.URL+"/v1/certificates/a.test", "") // no token: not a refused token
	var warn, debug int
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		if !strings.Contains(line, "bearer token the server does not hold") {
			continue
		}
		switch {
		case strings.Contains(line, "level=WARN") && strings.Contains(line, "refused=1") && strings.Contains(line, "remote_addr=127.0.0.1:"):
			warn++
		case strings.Contains(line, "level=DEBUG"):
			debug++
		default:
			t.Errorf("unexpected line: %s", line)
		}
	}
	if warn != 1 || debug != 2 {
		t.Errorf("logged %d warnings and %d debug lines, want 1 and 2:\n%s", warn, debug, logs)
	}
	if strings.Contains(logs.String(), wrong) {
		t.Error("the log holds the token")
	}
}
