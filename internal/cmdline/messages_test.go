package cmdline

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestListenErrorOutgoing: a port held by one of this host's outgoing
// connections, which nothing listens on, is not blamed on a listener
// (trial 33: "stop what listens on it" sent the user looking for a
// server that did not exist); a port a server listens on still is.
func TestListenErrorOutgoing(t *testing.T) {
	srv, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	out, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	held := out.LocalAddr().String()
	_, err = net.Listen("tcp", held)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("listening on %s, the local address of an outgoing connection: %v, want EADDRINUSE", held, err)
	}
	port := strconv.Itoa(out.LocalAddr().(*net.TCPAddr).Port)
	for _, addr := range []string{held, ":" + port} {
		msg := ListenError(err, addr, "--listen", "the API").Error()
		if !strings.Contains(msg, "nothing listens on it: an outgoing connection") || strings.Contains(msg, "stop what listens") {
			t.Errorf("ListenError for %s held by an outgoing connection: %q", addr, msg)
		}
	}
	if msg := ListenError(err, srv.Addr().String(), "--listen", "the API").Error(); !strings.Contains(msg, "stop what listens on it") {
		t.Errorf("ListenError for a port a server listens on: %q, want it to say to stop that server", msg)
	}
}

// TestMapErrors: each joined error is mapped, in order; a single error
// is mapped alone.
func TestMapErrors(t *testing.T) {
	upper := func(e error) error { return errors.New(strings.ToUpper(e.Error())) }
	if got := MapErrors(errors.Join(errors.New("a"), errors.New("b")), upper); got.Error() != "A\nB" {
		t.Errorf("joined: %q, want %q", got, "A\nB")
	}
	if got := MapErrors(errors.New("c"), upper); got.Error() != "C" {
		t.Errorf("single: %q, want %q", got, "C")
	}
}

func TestPrefix(t *testing.T) {
	for _, tt := range []struct{ err, want string }{
		{"stat /x: no such file", "--to: stat /x: no such file"},
		{"--to-key-file: storage key file: stat /x", "--to-key-file: storage key file: stat /x"},
		{"--to redis://h:1 cannot be reached", "--to redis://h:1 cannot be reached"},
		{"--tool x: bad", "--to: --tool x: bad"},
	} {
		if got := Prefix("--to", errors.New(tt.err)).Error(); got != tt.want {
			t.Errorf("Prefix(--to, %q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
