package testsvc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

const knotHint = "install Debian's knot and knot-dnsutils (apt-get install knot knot-dnsutils)"

// KnotOptions configures [Knot]. The zero value serves one zone, "a.test",
// with an hmac-sha256 key.
type KnotOptions struct {
	// Zones are the zones knotd serves, each with the records
	// NamedOptions.Zones describes, and open to RFC 2136 updates signed by
	// the TSIG key. Nil means []string{"a.test"}.
	Zones []string

	// Algorithm is the TSIG key's algorithm, "hmac-sha256" or
	// "hmac-sha512". Empty means "hmac-sha256".
	Algorithm string

	// Locked are zones of Zones that knotd serves but whose ACL grants
	// the key no updates: Knot refuses an update there with NOTAUTH and
	// the TSIG error BADKEY, though it knows the key.
	Locked []string
}

// KnotServer is Knot DNS's knotd run for one test: authoritative, on UDP
// and TCP on 127.0.0.1 only, accepting dynamic updates (RFC 2136) signed
// with one TSIG key, its configuration, zone files, journal and control
// socket in t.TempDir(). It is a second implementation of RFC 2136
// beside BIND, for interoperability tests.
type KnotServer struct {
	dir    string
	addr   string
	zones  []string
	secret string
	alg    string
	locked []string // zones without the update ACL

	updates atomic.Int64 // updates applied, counted from knotd's log
}

// Knot starts knotd on a free 127.0.0.1 port and waits until it answers an
// SOA query for every zone over UDP and TCP. The server is killed when the
// test ends. If knotd is not installed, Knot skips the test (fails it under
// CI=true).
func Knot(t testing.TB, opts KnotOptions) *KnotServer {
	t.Helper()
	bin := LookPath(t, "knotd", knotHint)
	zones, alg, secret := zonesAndKey(t, opts.Zones, opts.Algorithm)
	k := &KnotServer{dir: t.TempDir(), zones: zones, secret: secret, alg: alg, locked: slices.Clone(opts.Locked)}
	for _, z := range k.zones {
		if err := os.WriteFile(filepath.Join(k.dir, z+".zone"), []byte(zoneFile(z)), 0o600); err != nil {
			t.Fatalf("testsvc: writing zone %s: %v", z, err)
		}
	}
	conf := filepath.Join(k.dir, "knot.conf")
	err := RetryPorts(func() error {
		port := FreePort(t)
		k.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := os.WriteFile(conf, []byte(k.config(port)), 0o600); err != nil {
			return fmt.Errorf("writing knot.conf: %w", err)
		}
		p, err := StartProcess(t, exec.Command(bin, "-c", conf), k.logLine)
		if err != nil {
			return err
		}
		return p.WaitReady(readyTimeout, func(ctx context.Context) error {
			for _, z := range k.zones {
				for _, network := range []string{"udp", "tcp"} {
					a, err := dnsQuery(ctx, network, k.addr, z, typeSOA)
					if err != nil {
						return fmt.Errorf("SOA %s over %s: %w", z, network, err)
					}
					if a.rcode != 0 || !a.authoritative || a.answers == 0 {
						return fmt.Errorf("SOA %s over %s: rcode %d, authoritative %t, %d answers", z, network, a.rcode, a.authoritative, a.answers)
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("testsvc: starting knotd: %v", err)
	}
	return k
}

// config returns knot.conf: one key, one ACL granting it updates (on
// every zone but the Locked ones), every
// path in the temporary directory, zone files never rewritten.
func (k *KnotServer) config(port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    rundir: %[1]q
    listen: 127.0.0.1@%[2]d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

control:
    listen: %[3]q

log:
  - target: stderr
    any: info

database:
    storage: %[1]q

key:
  - id: %[4]s
    algorithm: %[5]s
    secret: %[6]s

acl:
  - id: update
    key: %[4]s
    action: update

template:
  - id: default
    storage: %[1]q
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
    semantic-checks: off

zone:
`, k.dir, port, filepath.Join(k.dir, "knot.sock"), namedKeyName, k.alg, k.secret)
	for _, z := range k.zones {
		fmt.Fprintf(&b, "  - domain: %s\n    file: %q\n", z, filepath.Join(k.dir, z+".zone"))
		if !slices.Contains(k.locked, z) {
			b.WriteString("    acl: update\n")
		}
	}
	return b.String()
}

func (k *KnotServer) logLine(line string) {
	// One line per update message applied: "[a.test.] DDNS, finished, serial 1 -> 2, ...".
	if strings.Contains(line, "DDNS, finished") {
		k.updates.Add(1)
	}
}

// Addr returns the server's host:port for both UDP and TCP.
func (k *KnotServer) Addr() string { return k.addr }

// Zones returns the zones the server is authoritative for.
func (k *KnotServer) Zones() []string { return slices.Clone(k.zones) }

// KeyName returns the name of the TSIG key, fully qualified.
func (k *KnotServer) KeyName() string { return namedKeyName }

// Algorithm returns the TSIG algorithm, "hmac-sha256" or "hmac-sha512".
func (k *KnotServer) Algorithm() string { return k.alg }

// Secret returns the TSIG key's secret in standard base64. It is random
// for every server.
func (k *KnotServer) Secret() string { return k.secret }

// Updates returns how many update messages (RFC 2136) knotd has applied
// since it started, counted from its log. Refused updates do not count.
func (k *KnotServer) Updates() int { return int(k.updates.Load()) }

// DigTXT returns what "dig +short TXT name" prints when asked at the
// server ("" for no record).
func (k *KnotServer) DigTXT(t testing.TB, name string) string {
	t.Helper()
	return digTXT(t, k.addr, name)
}
