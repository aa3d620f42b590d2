package testsvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const powerDNSHint = "install Debian's pdns-server, pdns-backend-sqlite3 and sqlite3 (apt-get install pdns-server pdns-backend-sqlite3 sqlite3)"

// powerDNSSchemas are where Debian puts the gsqlite3 schema.
var powerDNSSchemas = []string{
	"/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
	"/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
}

// PowerDNSOptions configures [PowerDNS]. The zero value serves one zone,
// "a.test".
type PowerDNSOptions struct {
	// Zones are created through the HTTP API at start, each with the
	// records NamedOptions.Zones describes. Nil means []string{"a.test"}.
	Zones []string
}

// PowerDNSServer is the PowerDNS Authoritative Server (pdns_server) run
// for one test: the gsqlite3 backend in t.TempDir(), DNS on UDP and TCP
// and the HTTP API (api=yes) on 127.0.0.1 only, with a random API key; no
// guardian, no daemon, no caches (every answer reflects the database).
type PowerDNSServer struct {
	dir    string
	addr   string // DNS host:port
	apiURL string // http://127.0.0.1:PORT
	apiKey string
	zones  []string
}

// PowerDNS starts pdns_server on free 127.0.0.1 ports, creates the zones
// through its API and waits until it answers an SOA query for each over
// UDP and TCP. The server is killed when the test ends. If pdns_server,
// its sqlite3 backend or the sqlite3 tool is missing, PowerDNS skips the
// test (fails it under CI=true).
func PowerDNS(t testing.TB, opts PowerDNSOptions) *PowerDNSServer {
	t.Helper()
	bin := LookPath(t, "pdns_server", powerDNSHint)
	sqlite := LookPath(t, "sqlite3", powerDNSHint)
	schema := ""
	for _, s := range powerDNSSchemas {
		if _, err := os.Stat(s); err == nil {
			schema = s
			break
		}
	}
	if schema == "" {
		Unavailable(t, "the PowerDNS gsqlite3 schema", powerDNSHint, fmt.Errorf("none of %v", powerDNSSchemas))
	}
	zones := opts.Zones
	if zones == nil {
		zones = []string{"a.test"}
	}
	for _, z := range zones {
		if !zoneName.MatchString(z) {
			t.Fatalf("testsvc: zone %q: want a lower-case name without a trailing dot", z)
		}
	}
	key := make([]byte, 16)
	rand.Read(key)
	p := &PowerDNSServer{dir: t.TempDir(), apiKey: hex.EncodeToString(key), zones: slices.Clone(zones)}
	db := filepath.Join(p.dir, "pdns.sqlite3")
	sql, err := os.ReadFile(schema)
	if err != nil {
		t.Fatalf("testsvc: reading %s: %v", schema, err)
	}
	cmd := exec.Command(sqlite, db)
	cmd.Stdin = bytes.NewReader(sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testsvc: sqlite3 %s < %s: %v\n%s", db, schema, err, out)
	}
	err = RetryPorts(func() error {
		dnsPort, apiPort := FreePort(t), FreePort(t)
		p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(dnsPort))
		p.apiURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
		if err := os.WriteFile(filepath.Join(p.dir, "pdns.conf"), []byte(p.config(db, dnsPort, apiPort)), 0o600); err != nil {
			return fmt.Errorf("writing pdns.conf: %w", err)
		}
		proc, err := StartProcess(t, exec.Command(bin, "--config-dir="+p.dir), nil)
		if err != nil {
			return err
		}
		return proc.WaitReady(readyTimeout, func(ctx context.Context) error {
			_, err := p.api(ctx, http.MethodGet, "/api/v1/servers/localhost", nil)
			return err
		})
	})
	if err != nil {
		t.Fatalf("testsvc: starting pdns_server: %v", err)
	}
	for _, z := range p.zones {
		if err := p.createZone(t.Context(), z); err != nil {
			t.Fatalf("testsvc: creating zone %s in PowerDNS: %v", z, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), readyTimeout)
	defer cancel()
	for _, z := range p.zones {
		for _, network := range []string{"udp", "tcp"} {
			a, err := dnsQuery(ctx, network, p.addr, z, typeSOA)
			if err != nil || a.rcode != 0 || !a.authoritative || a.answers == 0 {
				t.Fatalf("testsvc: PowerDNS SOA %s over %s: %v (%+v)", z, network, err, a)
			}
		}
	}
	return p
}

// config returns pdns.conf.
func (p *PowerDNSServer) config(db string, dnsPort, apiPort int) string {
	return fmt.Sprintf(`launch=gsqlite3
gsqlite3-database=%s
local-address=127.0.0.1
local-port=%d
api=yes
api-key=%s
webserver=yes
webserver-address=127.0.0.1
webserver-port=%d
webserver-allow-from=127.0.0.1
guardian=no
daemon=no
disable-syslog=yes
write-pid=no
socket-dir=%s
cache-ttl=0
negquery-cache-ttl=0
query-cache-ttl=0
consistent-backends=yes
distributor-threads=1
receiver-threads=1
loglevel=4
`, db, dnsPort, p.apiKey, apiPort, p.dir)
}

// createZone creates zone with an SOA, NS ns.ZONE and A records 127.0.0.1
// for ns.ZONE, the apex and the wildcard.
func (p *PowerDNSServer) createZone(ctx context.Context, zone string) error {
	z := zone + "."
	a := func(name string) map[string]any {
		return map[string]any{"name": name, "type": "A", "ttl": 60, "records": []map[string]any{{"content": "127.0.0.1", "disabled": false}}}
	}
	body := map[string]any{
		"name": z, "kind": "Native", "nameservers": []string{"ns." + z},
		"rrsets": []map[string]any{
			{"name": z, "type": "SOA", "ttl": 60, "records": []map[string]any{{"content": "ns." + z + " hostmaster." + z + " 1 60 60 600 60", "disabled": false}}},
			a("ns." + z), a(z), a("*." + z),
		},
	}
	_, err := p.api(ctx, http.MethodPost, "/api/v1/servers/localhost/zones", body)
	return err
}

// api sends one request to the HTTP API with the key.
func (p *PowerDNSServer) api(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.apiURL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-Key", p.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Addr returns the DNS host:port, for both UDP and TCP.
func (p *PowerDNSServer) Addr() string { return p.addr }

// APIURL returns the HTTP API's base URL, "http://127.0.0.1:PORT".
func (p *PowerDNSServer) APIURL() string { return p.apiURL }

// APIKey returns the API key (X-API-Key). It is random for every server.
func (p *PowerDNSServer) APIKey() string { return p.apiKey }

// Zones returns the zones the server serves.
func (p *PowerDNSServer) Zones() []string { return slices.Clone(p.zones) }

// DigTXT returns what "dig +short TXT name" prints when asked at the
// server ("" for no record).
func (p *PowerDNSServer) DigTXT(t testing.TB, name string) string {
	t.Helper()
	return digTXT(t, p.addr, name)
}
