package certserver_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// discardWriter is a ResponseWriter that keeps nothing: a cached GET's
// allocations are the handler's own.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

// cachedGETAllocs is the allocations of one cached, authenticated
// GET /v1/certificates/a.test through h, with its audit line.
func cachedGETAllocs(t *testing.T, tokens []string, token string) float64 {
	t.Helper()
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	aw := certserver.NewAuditWriter(discardAll{}, nil)
	t.Cleanup(func() { aw.Close() })
	h := &certserver.Handler{Manager: m, Tokens: tokens, Audit: slog.New(slog.NewJSONHandler(aw, nil)), AuditErr: aw.Err}
	r := httptest.NewRequest(http.MethodGet, "/v1/certificates/a.test", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r) // issues a.test and renders its answer
	if w.code != 0 && w.code != http.StatusOK {
		t.Fatalf("GET /v1/certificates/a.test = %d, want 200", w.code)
	}
	return testing.AllocsPerRun(200, func() {
		clear(w.h)
		h.ServeHTTP(w, r)
	})
}

type discardAll struct{}

func (discardAll) Write(p []byte) (int, error) { return len(p), nil }

// TestCachedGETAllocs: a cached, authenticated GET allocates nothing in
// the handler, whether its token is scoped or not: the scope check is a
// map lookup per label, the audit-failure check an atomic load.
func TestCachedGETAllocs(t *testing.T) {
	for _, tt := range []struct {
		name   string
		tokens []string
	}{
		{"unscoped", []string{"", token1}},
		{"scoped", []string{token2 + " names=b.test", token1 + " names=*.x.test,a.test"}},
		{"scoped by wildcard", []string{token1 + " names=*.test"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := cachedGETAllocs(t, tt.tokens, token1)
			t.Logf("cached GET, %s token: %.0f allocations", tt.name, n)
			if n != 0 && !raceEnabled {
				t.Errorf("cached GET with a %s token: %.0f allocations, want 0", tt.name, n)
			}
		})
	}
}
