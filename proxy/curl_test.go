package proxy_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/proxy"
)

// TestCurl checks what a real client sees, as the acceptance test of
// `certkeeper proxy` does with Pebble's root: curl trusts only the test CA,
// resolves a.test to the proxy, negotiates HTTP/2, and gets the backend's
// body, which reports the headers the backend saw.
func TestCurl(t *testing.T) {
	curl := testsvc.LookPath(t, "curl", "apt-get install curl")
	backend := startEcho(t, "default")
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})}
	p := startProxy(t, "127.0.0.1", h, nil)

	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	url := "https://a.test:" + p.port + "/x"
	cmd := exec.CommandContext(ctx, curl,
		"-q", // no ~/.curlrc
		"--noproxy", "*",
		"--max-time", "10",
		"--cacert", p.pki.rootFile,
		"--resolve", "a.test:"+p.port+":127.0.0.1",
		"--http2", "-sS", "-o", "-", "-w", "\n%{http_version}",
		url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	// The body (JSON and a newline), then -w's newline and version.
	text := strings.TrimSpace(string(out))
	i := strings.LastIndexByte(text, '\n')
	if i < 0 {
		t.Fatalf("curl output %q has no body", out)
	}
	body, version := text[:i], text[i+1:]
	if version != "2" {
		t.Errorf("curl --http2 reports HTTP version %q, want 2", version)
	}
	var got seen
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("curl body %q: %v", body, err)
	}
	want := seen{
		Backend: "default",
		Host:    "a.test:" + p.port,
		Path:    "/x",
		XFF:     "127.0.0.1",
		XProto:  "https",
		XHost:   "a.test:" + p.port,
		XRealIP: "127.0.0.1",
		XPort:   p.port,
	}
	if got != want {
		t.Errorf("backend saw %+v, want %+v", got, want)
	}
}
