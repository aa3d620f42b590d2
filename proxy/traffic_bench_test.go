package proxy_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/certkeeper/certkeeper/proxy"
)

// BenchmarkHandler measures a request through a Handler to a local
// backend, without and with Traffic counting (which the certkeeper proxy
// always has): the counting's cost is the difference.
func BenchmarkHandler(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer backend.Close()
	router, err := proxy.NewRouter(proxy.RouterConfig{Default: backend.URL})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		traffic *proxy.Traffic
	}{{"plain", nil}, {"traffic", new(proxy.Traffic)}} {
		b.Run(bc.name, func(b *testing.B) {
			h := &proxy.Handler{Router: router, Logger: slog.New(slog.DiscardHandler), Traffic: bc.traffic}
			defer h.CloseIdleConnections()
			req := httptest.NewRequest(http.MethodGet, "http://a.test/", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
