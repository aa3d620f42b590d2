package proxy_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/proxy"
)

// TestStallTimeout: a request whose client stops sending its body, or
// stops reading the response, is ended once a read or write has waited
// StallTimeout (a security trial's stalled uploads held every connection
// of --max-conns, and as many backend connections, for as long as the
// attacker liked); a slow body that keeps coming, and a response with
// pauses longer than StallTimeout between its parts, are not.
func TestStallTimeout(t *testing.T) {
	results := make(chan string, 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			n, err := io.Copy(io.Discard, r.Body)
			results <- fmt.Sprintf("upload %d %v", n, err != nil)
		case "/pauses":
			for _, part := range []string{"a", "b"} {
				io.WriteString(w, part)
				http.NewResponseController(w).Flush()
				time.Sleep(2500 * time.Millisecond)
			}
		case "/large":
			chunk := make([]byte, 64<<10)
			var err error
			for i := 0; i < 1024 && err == nil; i++ { // 64 MiB at most
				_, err = w.Write(chunk)
			}
			results <- fmt.Sprintf("large %v", err != nil)
		}
	})
	p := startProxy(t, "127.0.0.1", h, nil, stallAfter(time.Second))
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: p.pki.roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	result := func(what string) string {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(testTimeout):
			t.Fatalf("%s: the handler still waits after %s", what, testTimeout)
		}
		return ""
	}

	// A body that stops after 2 of 100 bytes.
	c := dial()
	start := time.Now()
	fmt.Fprint(c, "POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\nab")
	if got := result("a stalled body"); got != "upload 2 true" {
		t.Errorf("a stalled body: %s, want the read cut after 2 bytes", got)
	}
	if d := time.Since(start); d < time.Second || d > 4*time.Second {
		t.Errorf("a stalled body was cut after %s, want about StallTimeout (1s)", d)
	}

	// A body that keeps coming, a byte every 400 ms for 3 s.
	c = dial()
	fmt.Fprint(c, "POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 8\r\n\r\n")
	for range 8 {
		time.Sleep(400 * time.Millisecond)
		fmt.Fprint(c, "x")
	}
	if got := result("a slow body"); got != "upload 8 false" {
		t.Errorf("a slow body that keeps coming: %s, want all 8 bytes read", got)
	}

	// A response with pauses of 2.5 s between its parts.
	resp, err := p.client(t, true).Get("https://a.test/pauses")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "ab" {
		t.Errorf("a response with pauses: %q, %v; want \"ab\" whole", body, err)
	}

	// A client that never reads a large response.
	c = dial()
	fmt.Fprint(c, "GET /large HTTP/1.1\r\nHost: a.test\r\n\r\n")
	if got := result("an unread response"); got != "large true" {
		t.Errorf("a response nobody reads: %s, want the write cut", got)
	}
	if line, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Errorf("the unread response began %q", line)
	}
}

// stallAfter sets a Server's StallTimeout.
func stallAfter(d time.Duration) func(*proxy.Server) {
	return func(s *proxy.Server) { s.StallTimeout = d }
}

// TestStallTimeoutHTTP2: over HTTP/2 a stream whose body stops is ended
// after StallTimeout, and the connection's other streams go on.
func TestStallTimeoutHTTP2(t *testing.T) {
	results := make(chan string, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			n, err := io.Copy(io.Discard, r.Body)
			results <- fmt.Sprintf("upload %d %v", n, err != nil)
			return
		}
		io.WriteString(w, "ok")
	})
	p := startProxy(t, "127.0.0.1", h, nil, stallAfter(time.Second))
	client := p.client(t, true)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	go func() {
		pw.Write([]byte("ab")) // then nothing
	}()
	req, err := http.NewRequest(http.MethodPost, "https://a.test/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case got := <-results:
		if got != "upload 2 true" {
			t.Errorf("a stalled HTTP/2 body: %s, want the read cut after 2 bytes", got)
		}
	case <-time.After(testTimeout):
		t.Fatal("a stalled HTTP/2 body is still read")
	}
	resp, err := client.Get("https://a.test/other")
	if err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("another stream: %v, %v", resp, err)
	}
	resp.Body.Close()
}
