package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const namedHint = "install Debian's bind9 (apt-get install bind9 bind9-dnsutils)"

// namedKeyName is the name of the TSIG key allowed to update every zone.
const namedKeyName = "certkeeper-test."

// zoneName accepts lower-case host names: the names are pasted into
// named.conf and zone files, so nothing that could end a string may pass.
var zoneName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)

// NamedOptions configures [Named]. The zero value serves one zone, "a.test".
type NamedOptions struct {
	// Zones are the zones named serves as primary. Each gets an SOA, the NS
	// record ns.ZONE, and A records 127.0.0.1 for ns.ZONE, the apex and, by
	// a wildcard, every other name in it (as pebble-challtestsrv answers),
	// and may be changed with RFC 2136 updates signed by the TSIG key. Names
	// are lower case, without a trailing dot. Nil means []string{"a.test"};
	// an empty, non-nil slice means none: a server that knows no zone and
	// does not recurse, as a resolver that cannot see an internal zone
	// answers (REFUSED).
	Zones []string

	// Algorithm is the TSIG key's algorithm, "hmac-sha256" or
	// "hmac-sha512". Empty means "hmac-sha256".
	Algorithm string

	// Records, when set, are the only names (fully qualified, lower
	// case, without the trailing dot) whose TXT records the key may
	// update: each zone's update-policy grants "name NAME TXT" for those
	// in it, the least-privilege policy operators give an ACME client,
	// instead of every name of the zone.
	Records []string
}

// NamedServer is BIND 9's named run for one test: authoritative only
// (recursion off), listening on UDP and TCP on 127.0.0.1 only, accepting
// dynamic updates (RFC 2136) signed with one TSIG key (RFC 8945), with no
// rndc control channel and every file in t.TempDir().
type NamedServer struct {
	bin    string
	dir    string
	conf   string
	addr   string
	zones  []string
	grants []string // NamedOptions.Records
	secret string
	alg    string
	// upstream, for a resolver started by Resolver, is the authoritative
	// server its zones are forwarded to; "" for an authoritative server.
	upstream string

	mu   sync.Mutex // guards proc
	proc *Process

	addedMu sync.Mutex     // guards added (not mu: Stop holds that while the log drains)
	added   map[string]int // records added by updates and not removed, by name (Updates)

	updates atomic.Int64 // accepted dynamic updates, counted from named's log
}

// zonesAndKey checks the zones and TSIG algorithm a test asked of an
// authoritative server (a.test and hmac-sha256 when not given) and makes a
// random TSIG secret of the algorithm's size, base64-encoded.
func zonesAndKey(t testing.TB, zones []string, alg string) ([]string, string, string) {
	t.Helper()
	if zones == nil {
		zones = []string{"a.test"}
	}
	for _, z := range zones {
		if !zoneName.MatchString(z) {
			t.Fatalf("testsvc: zone %q: want a lower-case name without a trailing dot", z)
		}
	}
	if alg == "" {
		alg = "hmac-sha256"
	}
	if alg != "hmac-sha256" && alg != "hmac-sha512" {
		t.Fatalf("testsvc: TSIG algorithm %q: want hmac-sha256 or hmac-sha512", alg)
	}
	key := make([]byte, 32)
	if alg == "hmac-sha512" {
		key = make([]byte, 64)
	}
	rand.Read(key)
	return slices.Clone(zones), alg, base64.StdEncoding.EncodeToString(key)
}

// Named starts named on a free 127.0.0.1 port and waits until it answers an
// SOA query for every zone over UDP and TCP. The server is killed when the
// test ends. If named is not installed, Named skips the test (fails it under
// CI=true).
//
// named runs as the user running the test (it is not given -u). On a host
// where AppArmor confines /usr/sbin/named to /etc/bind and /var/cache/bind,
// it cannot read its temporary files; its output, printed when the test
// fails, says so.
func Named(t testing.TB, opts NamedOptions) *NamedServer {
	t.Helper()
	zones, alg, secret := zonesAndKey(t, opts.Zones, opts.Algorithm)
	n := &NamedServer{
		bin:    LookPath(t, "named", namedHint),
		dir:    t.TempDir(),
		zones:  zones,
		grants: slices.Clone(opts.Records),
		secret: secret,
		alg:    alg,
	}
	for _, r := range n.grants {
		if !zoneName.MatchString(strings.TrimPrefix(r, "_")) {
			t.Fatalf("testsvc: record %q: want a lower-case name without a trailing dot", r)
		}
	}
	n.conf = filepath.Join(n.dir, "named.conf")
	for _, z := range n.zones {
		if err := os.WriteFile(filepath.Join(n.dir, z+".zone"), []byte(zoneFile(z)), 0o600); err != nil {
			t.Fatalf("testsvc: writing zone %s: %v", z, err)
		}
	}
	if err := n.listen(t); err != nil {
		t.Fatalf("testsvc: starting named: %v", err)
	}
	return n
}

// listen writes named.conf for a free port and starts named on it,
// retrying with another port if the first was taken meanwhile.
func (n *NamedServer) listen(t testing.TB) error {
	t.Helper()
	return RetryPorts(func() error {
		port := FreePort(t)
		n.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := os.WriteFile(n.conf, []byte(n.config(port)), 0o600); err != nil {
			return fmt.Errorf("writing named.conf: %w", err)
		}
		return n.start(t)
	})
}

// DigTXT returns what "dig +short TXT name" prints when asked at the
// server, as a person checking it would run it ("" for no record).
func (n *NamedServer) DigTXT(t testing.TB, name string) string {
	t.Helper()
	return digTXT(t, n.addr, name)
}

// digTXT runs "dig +short TXT name" at addr.
func digTXT(t testing.TB, addr, name string) string {
	t.Helper()
	bin := LookPath(t, "dig", "install Debian's bind9-dnsutils")
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(bin, "@"+host, "-p", port, "+short", "+time=2", "+tries=1", "TXT", name).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// SOASerial returns the serial of zone's SOA record at addr, as "dig SOA"
// shows it: a test reads it before and after to see whether a dynamic
// update changed the zone.
func SOASerial(t testing.TB, addr, zone string) uint32 {
	t.Helper()
	bin := LookPath(t, "dig", "install Debian's bind9-dnsutils")
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(bin, "@"+host, "-p", port, "+short", "+tcp", "+time=2", "+tries=1", "SOA", zone).CombinedOutput()
	if err != nil {
		t.Fatalf("dig SOA %s: %v\n%s", zone, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		t.Fatalf("dig SOA %s at %s: %q has no serial", zone, addr, out)
	}
	serial, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		t.Fatalf("dig SOA %s at %s: serial %q: %v", zone, addr, f[2], err)
	}
	return uint32(serial)
}

// Addr returns the server's host:port, e.g. "127.0.0.1:40123", for both UDP
// and TCP.
func (n *NamedServer) Addr() string { return n.addr }

// Zones returns the zones the server is authoritative for.
func (n *NamedServer) Zones() []string { return slices.Clone(n.zones) }

// KeyName returns the name of the TSIG key, fully qualified
// ("certkeeper-test.").
func (n *NamedServer) KeyName() string { return namedKeyName }

// Algorithm returns the TSIG algorithm as BIND and nsupdate spell it,
// "hmac-sha256" or "hmac-sha512" (NamedOptions.Algorithm).
func (n *NamedServer) Algorithm() string { return n.alg }

// Secret returns the TSIG key's secret in standard base64, as named.conf and
// nsupdate -y take it. It is random for every server.
func (n *NamedServer) Secret() string { return n.secret }

// Updates returns how many changes named has applied from dynamic updates
// (RFC 2136) since it started: one per record added or deleted, counted
// from its log ("updating zone ...: adding an RR at NAME ..."). Refused
// updates do not count. named logs the removal of a value that is not
// there (rfc2136's CheckAccess sends one) as it logs a real one, without
// the value: a removal counts only at a name that records were added to
// by updates and not all removed again.
func (n *NamedServer) Updates() int { return int(n.updates.Load()) }

func (n *NamedServer) logLine(line string) {
	_, change, ok := strings.Cut(line, "updating zone ")
	if !ok {
		return
	}
	for _, op := range []string{": adding an RR at ", ": deleting an RR at "} {
		_, rest, ok := strings.Cut(change, op)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, " ")
		name = strings.ToLower(strings.Trim(name, "'"))
		n.addedMu.Lock()
		if n.added == nil {
			n.added = map[string]int{}
		}
		if op == ": adding an RR at " {
			n.added[name]++
			n.updates.Add(1)
		} else if n.added[name] > 0 {
			n.added[name]--
			n.updates.Add(1)
		}
		n.addedMu.Unlock()
	}
}

// Stop kills the server, so that tests can see what a dead DNS server does
// to their code. It may be called more than once.
func (n *NamedServer) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	// A process that outlives SIGKILL is reported by the cleanup that
	// StartProcess registered, which stops it again.
	_ = n.proc.Stop()
}

func (n *NamedServer) start(t testing.TB) error {
	t.Helper()
	// -g: foreground, log to stderr; -4: IPv4 only; -n 1: one worker thread,
	// enough for a test on a shared machine.
	cmd := exec.Command(n.bin, "-g", "-4", "-n", "1", "-c", n.conf)
	cmd.Dir = n.dir
	p, err := StartProcess(t, cmd, n.logLine)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
	return p.WaitReady(readyTimeout, func(ctx context.Context) error {
		if len(n.zones) == 0 {
			// Any answer (REFUSED) means it is up.
			for _, network := range []string{"udp", "tcp"} {
				if _, err := dnsQuery(ctx, network, n.addr, "invalid", typeSOA); err != nil {
					return fmt.Errorf("SOA invalid over %s: %w", network, err)
				}
			}
			return nil
		}
		for _, z := range n.zones {
			for _, network := range []string{"udp", "tcp"} {
				a, err := dnsQuery(ctx, network, n.addr, z, typeSOA)
				if err != nil {
					return fmt.Errorf("SOA %s over %s: %w", z, network, err)
				}
				if a.rcode != 0 || (!a.authoritative && n.upstream == "") || a.answers == 0 {
					return fmt.Errorf("SOA %s over %s: rcode %d, authoritative %t, %d answers",
						z, network, a.rcode, a.authoritative, a.answers)
				}
			}
		}
		return nil
	})
}

// Resolver starts a second named for the test: a recursive resolver that
// forwards n's zones to n and follows CNAMEs from one zone into another,
// as a CA's resolver does (an authoritative-only server answers a CNAME
// without chasing it into another zone, even one it serves). Its caches
// keep answers for at most a second. Point Pebble at it
// (testca.Options.DNSServer) for tests of CNAME delegation.
func (n *NamedServer) Resolver(t testing.TB) *NamedServer {
	t.Helper()
	r := &NamedServer{bin: n.bin, dir: t.TempDir(), zones: n.Zones(), upstream: n.addr}
	r.conf = filepath.Join(r.dir, "named.conf")
	if err := r.listen(t); err != nil {
		t.Fatalf("testsvc: starting the resolving named: %v", err)
	}
	return r
}

// config returns named.conf. Every path is in the temporary directory;
// controls { } turns rndc off. A resolver started by Resolver recurses
// and forwards the zones; an authoritative server serves them and takes
// updates signed with its key.
func (n *NamedServer) config(port int) string {
	role := "\trecursion no;\n"
	if n.upstream != "" {
		role = "\trecursion yes;\n\tallow-recursion { 127.0.0.1; };\n\tmax-cache-ttl 1;\n\tmax-ncache-ttl 1;\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `options {
	directory %[1]q;
	pid-file %[2]q;
	lock-file %[3]q;
	session-keyfile %[4]q;
	managed-keys-directory %[1]q;
	listen-on port %[5]d { 127.0.0.1; };
	listen-on-v6 { none; };
%[6]s	allow-transfer { none; };
	dnssec-validation no;
	notify no;
};

controls { };
`, n.dir, filepath.Join(n.dir, "named.pid"), filepath.Join(n.dir, "named.lock"),
		filepath.Join(n.dir, "session.key"), port, role)
	if n.upstream != "" {
		host, upPort, _ := net.SplitHostPort(n.upstream)
		for _, z := range n.zones {
			fmt.Fprintf(&b, `
zone %q {
	type forward;
	forward only;
	forwarders { %s port %s; };
};
`, z, host, upPort)
		}
		return b.String()
	}
	fmt.Fprintf(&b, `
key %q {
	algorithm %s;
	secret %q;
};
`, namedKeyName, n.alg, n.secret)
	for _, z := range n.zones {
		fmt.Fprintf(&b, `
zone %q {
	type primary;
	file %q;
	update-policy { %s};
};
`, z, filepath.Join(n.dir, z+".zone"), n.policy(z))
	}
	return b.String()
}

// policy returns the update-policy rules of zone: every name for the key,
// or only the TXT records of NamedOptions.Records in the zone (none: a
// policy that grants nothing).
func (n *NamedServer) policy(zone string) string {
	if n.grants == nil {
		return fmt.Sprintf("grant %s zonesub ANY; ", namedKeyName)
	}
	var b strings.Builder
	for _, r := range n.grants {
		if r == zone || strings.HasSuffix(r, "."+zone) {
			fmt.Fprintf(&b, "grant %s name %s. TXT; ", namedKeyName, r)
		}
	}
	if b.Len() == 0 {
		fmt.Fprintf(&b, "grant %s name nothing.%s. TXT; ", namedKeyName, zone)
	}
	return b.String()
}

func zoneFile(zone string) string {
	return fmt.Sprintf(`$ORIGIN %[1]s.
$TTL 60
@	IN	SOA	ns.%[1]s. hostmaster.%[1]s. 1 60 60 600 60
@	IN	NS	ns.%[1]s.
ns	IN	A	127.0.0.1
@	IN	A	127.0.0.1
*	IN	A	127.0.0.1
`, zone)
}
