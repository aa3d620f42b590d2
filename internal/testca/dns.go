package testca

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// AddA makes pebble-challtestsrv answer A queries for host with addrs
// instead of the default 127.0.0.1.
func (c *CA) AddA(t testing.TB, host string, addrs ...string) {
	t.Helper()
	c.challtestsrv(t, "/add-a", map[string]any{"host": host, "addresses": addrs})
}

// ClearA removes the A records AddA set for host; it resolves to 127.0.0.1
// again.
func (c *CA) ClearA(t testing.TB, host string) {
	t.Helper()
	c.challtestsrv(t, "/clear-a", map[string]any{"host": host})
}

// AddTXT adds a TXT record value for host (for example
// "_acme-challenge.example.com"), as a dns-01 solver would publish it.
// Several values may be added for one host.
func (c *CA) AddTXT(t testing.TB, host, value string) {
	t.Helper()
	c.challtestsrv(t, "/set-txt", map[string]any{"host": host, "value": value})
}

// ClearTXT removes every TXT record of host.
func (c *CA) ClearTXT(t testing.TB, host string) {
	t.Helper()
	c.challtestsrv(t, "/clear-txt", map[string]any{"host": host})
}

// challtestsrv POSTs a JSON request to pebble-challtestsrv's management API.
func (c *CA) challtestsrv(t testing.TB, path string, req map[string]any) {
	t.Helper()
	if c.challMgmt == "" {
		t.Fatalf("testca: %s: Options.DNSServer is set, so there is no pebble-challtestsrv to change", path)
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.challMgmt+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatalf("testca: pebble-challtestsrv %s: %v", path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("testca: pebble-challtestsrv %s %s: %s: %q", path, body, resp.Status, msg)
	}
}
