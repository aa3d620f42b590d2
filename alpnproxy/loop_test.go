package alpnproxy

import "testing"

// TestLoops: a route to the proxy's own port on loopback, or on the host
// it listens on, loops; the same port on another host, or another port,
// does not.
func TestLoops(t *testing.T) {
	for _, tc := range []struct {
		listen, target string
		want           bool
	}{
		{":18443", "127.0.0.1:18443", true},
		{":18443", "localhost:18443", true},
		{":18443", "[::1]:18443", true},
		{"[::]:443", "127.0.0.1:443", true},
		{"0.0.0.0:443", "0.0.0.0:443", true},
		{"127.0.0.1:21443", "127.0.0.1:21443", true},
		{"10.0.0.5:443", "10.0.0.5:443", true},
		{":443", "10.0.0.5:443", false},          // the web server on another host
		{"10.0.0.5:443", "127.0.0.1:443", false}, // loopback is not where the proxy listens
		{":21443", "127.0.0.1:443", false},       // iptables mode: another port
		{"127.0.0.1:21443", "127.0.0.2:8443", false},
		{"443", "127.0.0.1:443", false}, // not host:port; refused elsewhere
	} {
		if got := Loops(tc.listen, tc.target); got != tc.want {
			t.Errorf("Loops(%q, %q) = %v, want %v", tc.listen, tc.target, got, tc.want)
		}
	}
}
