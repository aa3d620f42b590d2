package upgrade

import (
	"net"
	"strconv"
	"testing"
)

// TestBoundTo: a listener matches the address configured by port number
// or service name, and by host: any for an empty host, the loopback
// addresses for localhost, an address as an address.
func TestBoundTo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	for addr, want := range map[string]bool{
		"127.0.0.1:" + port: true, ":" + port: true, "localhost:" + port: true, "[::ffff:127.0.0.1]:" + port: true,
		"127.0.0.1:0": true, "127.0.0.2:" + port: false, "a.example:" + port: false, "127.0.0.1:1": false,
	} {
		if got := boundTo(ln, addr); got != want {
			t.Errorf("boundTo(%s, %q) = %v, want %v", ln.Addr(), addr, got, want)
		}
	}
	// A service name is its port number: a listener on :443 is bound to
	// :https. Found without binding 443: a fake listener address.
	fake := fakeListener{&net.TCPAddr{IP: net.IPv4zero, Port: 443}}
	for addr, want := range map[string]bool{":https": true, ":443": true, ":http": false} {
		if got := boundTo(fake, addr); got != want {
			t.Errorf("boundTo(0.0.0.0:443, %q) = %v, want %v", addr, got, want)
		}
	}
}

// fakeListener is a net.Listener that only has an address.
type fakeListener struct{ addr net.Addr }

func (f fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (f fakeListener) Close() error              { return nil }
func (f fakeListener) Addr() net.Addr            { return f.addr }
