package http01

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

func TestServeToken(t *testing.T) {
	var s Solver
	chal := acme.Challenge{Type: "http-01", Token: "tok-123", KeyAuthorization: "tok-123.thumb"}
	if err := s.Present(t.Context(), chal); err != nil {
		t.Fatal(err)
	}
	answered := s.Answered(chal)
	select {
	case <-answered:
		t.Fatal("answered before any request")
	default:
	}
	fallbackHit := false
	h := s.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fallbackHit = true
		w.WriteHeader(http.StatusTeapot)
	}))
	tests := []struct {
		name, method, path string
		wantCode           int
		wantBody           string
	}{
		{"token", "GET", PathPrefix + "tok-123", 200, "tok-123.thumb"},
		{"head", "HEAD", PathPrefix + "tok-123", 200, ""},
		{"unknown token", "GET", PathPrefix + "nope", 404, ""},
		{"nested path", "GET", PathPrefix + "tok-123/x", 404, ""},
		{"post", "POST", PathPrefix + "tok-123", 404, ""},
		{"huge token", "GET", PathPrefix + strings.Repeat("a", 5000), 404, ""},
		{"fallback", "GET", "/index.html", http.StatusTeapot, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, "http://a.test"+tt.path, nil))
			if rec.Code != tt.wantCode {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.wantCode)
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", rec.Body.String(), tt.wantBody)
			}
		})
	}
	if !fallbackHit {
		t.Error("fallback never called for a non-challenge path")
	}
	select {
	case <-answered:
	default:
		t.Error("Answered channel not closed after the token was served")
	}
	if err := s.CleanUp(t.Context(), chal); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.KeyAuthorization("tok-123"); ok {
		t.Error("token still presented after CleanUp")
	}
}

func TestListen(t *testing.T) {
	var s Solver
	srv, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	chal := acme.Challenge{Token: "abc", KeyAuthorization: "abc.def"}
	if err := s.Present(t.Context(), chal); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + srv.Addr().String() + PathPrefix + "abc")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "abc.def" {
		t.Errorf("body = %q, want %q", body, "abc.def")
	}
	// A second listener on the same port fails and names the address.
	if _, err := s.Listen(srv.Addr().String()); err == nil || !strings.Contains(err.Error(), srv.Addr().String()) {
		t.Errorf("Listen on a busy port: err = %v, want one naming %s", err, srv.Addr())
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestPresentRejectsEmpty(t *testing.T) {
	var s Solver
	if err := s.Present(t.Context(), acme.Challenge{}); err == nil {
		t.Error("Present of an empty challenge succeeded")
	}
}
