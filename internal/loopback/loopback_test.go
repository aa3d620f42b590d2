package loopback

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAddrAndHost(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9100": true, "[::1]:9100": true, "localhost:9100": true, "LocalHost:1": true, "127.0.0.5:1": true,
		":9100": false, "0.0.0.0:9100": false, "[::]:9100": false, "192.0.2.1:9100": false, "a.example:9100": false,
		"127.0.0.1": false, "[::ffff:0.0.0.0]:1": false,
	} {
		if got := Addr(addr); got != want {
			t.Errorf("Addr(%q) = %v, want %v", addr, got, want)
		}
	}
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.0.0.1:8999": true, "localhost": true, "localhost:80": true, "[::1]": true, "[::1]:8999": true, "::1": true,
		"": false, "attacker.example": false, "attacker.example:8999": false, "127.0.0.1.nip.io": false, "localhost.attacker.example": false,
		"0.0.0.0": false, "192.0.2.1:80": false, "127.0.0.1.": false,
	} {
		if got := Host(host); got != want {
			t.Errorf("Host(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestGuard(t *testing.T) {
	h := Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }), "give it a token")
	for _, tt := range []struct {
		host  string
		local net.Addr
		want  int
	}{
		{"127.0.0.1:9100", nil, 200},
		{"localhost:9100", &net.TCPAddr{IP: net.IPv6loopback, Port: 9100}, 200},
		{"evil.example:9100", nil, 421},
		{"127.0.0.1:9100", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9100}, 421},
	} {
		req := httptest.NewRequest(http.MethodGet, "http://"+tt.host+"/metrics", nil)
		if tt.local != nil {
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, tt.local))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("Host %s, local %v: %d, want %d", tt.host, tt.local, rec.Code, tt.want)
		}
		if tt.want == 421 && (strings.Contains(rec.Body.String(), "secret") || !strings.Contains(rec.Body.String(), "give it a token")) {
			t.Errorf("Host %s, local %v: refusal %q", tt.host, tt.local, rec.Body)
		}
	}
}
