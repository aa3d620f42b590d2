package iptables

import (
	"strings"
	"testing"
)

// TestRedirectPort: the port a REDIRECT spec sends to, as iptables reads
// --to-ports (a port or a range) and acme-alpn-proxy's --to-port.
func TestRedirectPort(t *testing.T) {
	for spec, want := range map[string]string{
		"-p tcp --dport 443 -j REDIRECT --to-ports 21443":           "21443",
		"-p tcp --dport 443 -j REDIRECT --to-port 21443 -m comment": "21443",
		"-p tcp --dport 443 -j REDIRECT --to-ports 8000-8010":       "8000",
		"-p tcp --dport 443 -j DNAT --to-destination 10.0.0.1:443":  "",
	} {
		if got := RedirectPort(strings.Fields(spec)); got != want {
			t.Errorf("RedirectPort(%q) = %q, want %q", spec, got, want)
		}
	}
}
