// Package doctor checks, before anyone waits for a certificate, what
// usually breaks issuance: the name does not resolve, the port the CA
// connects to is closed, a CAA record forbids the CA, the CA is
// unreachable, the storage is read-only, the account is gone, the clock is
// wrong. Each failed check comes with what to do about it.
//
// It only looks: it registers no account, orders nothing and changes no
// DNS record. The connect-back check proves that this host answers on
// the name's address from here; it cannot prove that the CA, from the
// Internet, gets there too (a firewall may treat outside traffic
// differently, and NAT may hairpin only from inside).
package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/certkeeper/certkeeper/internal/redact"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// The outcomes of a check.
const (
	OK   = "ok"
	Warn = "warn" // works, but something is off
	Fail = "FAIL" // issuance will fail until it is fixed
	Skip = "skip" // could not be checked
)

// MaxClockSkew is the clock difference with the CA beyond which the clock
// check fails: ACME needs no exact time, but certificates that look
// not-yet-valid or expired to this host are served wrongly.
const MaxClockSkew = 30 * time.Second

// Result is the outcome of one check.
type Result struct {
	Check  string `json:"check"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Config says what to check.
type Config struct {
	// Name is the name a certificate is wanted for.
	Name string
	// Resolver is the DNS server (host:port) to ask for the name's
	// addresses and CAA records. Empty means the system's: the addresses
	// through the system resolver, CAA through the first nameserver of
	// /etc/resolv.conf.
	Resolver string
	// Addrs are the addresses certkeeper answers challenges on (e.g.
	// ":443", ":80"); each is checked by connecting back through the
	// name's resolved address. Empty skips the check.
	Addrs []string
	// DirectoryURL is the ACME CA's directory. Empty means certkeeper's
	// local CA, which validates nothing and needs no network: only the
	// storage is checked.
	DirectoryURL string
	// HTTPClient talks to the CA. Nil means http.DefaultClient.
	HTTPClient *http.Client
	// Storage is certkeeper's storage, checked for writing and for the
	// account. Nil skips those checks.
	Storage storage.Storage
	// Email names the account (as --email does).
	Email string
	// DNS01 sets dns-01 records; when set, the check "dns-01 provider"
	// finds the zone of Name's record and asks the provider whether it
	// may set it (dns01.Solver.Check), setting nothing. Nil skips it.
	DNS01 *dns01.Solver
}

// Run runs every check and returns the results in order.
func Run(ctx context.Context, c Config) []Result {
	var out []Result
	if c.DirectoryURL == "" {
		const why = "the local CA validates nothing and needs no network"
		checks := []string{"name resolves"}
		for _, addr := range c.Addrs {
			checks = append(checks, "connect-back on "+addr)
		}
		for _, check := range append(checks, "CA reachable", "CAA", "account") {
			out = append(out, Result{Check: check, Status: Skip, Detail: why})
		}
		if c.DNS01 != nil { // a rehearsal with the local CA finds a DNS mistake before a real CA does (a trial)
			out = append(out, checkDNS01(ctx, c))
		}
		return append(out, checkStorage(ctx, c), checkDurability(ctx, c))
	}
	addrs, r := checkResolve(ctx, c)
	out = append(out, r)
	out = append(out, checkConnectBack(ctx, c, addrs)...)
	dir, rs := checkCA(ctx, c)
	out = append(out, rs...)
	out = append(out, checkCAA(ctx, c, dir))
	out = append(out, checkDNS01(ctx, c))
	out = append(out, checkStorage(ctx, c))
	out = append(out, checkDurability(ctx, c))
	out = append(out, checkAccount(ctx, c, dir != nil))
	return out
}

// Failed reports whether any result failed.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// checkResolve looks up the name's addresses. A wildcard has none to
// look up: the CA validates it through DNS (dns-01), not by connecting;
// nor does a name with a dns-01 provider and no address to connect back
// to need one.
func checkResolve(ctx context.Context, c Config) ([]string, Result) {
	r := Result{Check: "name resolves"}
	if strings.HasPrefix(c.Name, "*.") {
		r.Status, r.Detail = Skip, c.Name+" is a wildcard: the CA validates it through DNS (dns-01), and needs no address for it"
		return nil, r
	}
	var addrs []string
	var err error
	if c.Resolver != "" {
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			var rrs []dns.RR
			rrs, err = query(ctx, c.Resolver, c.Name, t)
			if err != nil {
				break
			}
			for _, rr := range rrs {
				switch v := rr.(type) {
				case *dns.A:
					addrs = append(addrs, v.A.String())
				case *dns.AAAA:
					addrs = append(addrs, v.AAAA.String())
				}
			}
		}
	} else {
		addrs, err = net.DefaultResolver.LookupHost(ctx, c.Name)
	}
	switch {
	case len(addrs) == 0 && c.DNS01 != nil && len(c.Addrs) == 0:
		// dns-01 alone: an intranet name that exists only in internal
		// views, or none yet, is issued all the same (a DNS trial's CI
		// gate failed on such a name, told to publish an address).
		r.Status, r.Detail = Skip, c.Name+" has no address here; none is needed: the CA validates it through DNS (dns-01)"
	case err != nil:
		r.Status, r.Detail = Fail, fmt.Sprintf("looking up %s: %v", c.Name, err)
		r.Fix = "check the DNS server and that the zone exists"
	case len(addrs) == 0:
		r.Status, r.Detail = Fail, fmt.Sprintf("%s has no A or AAAA record", c.Name)
		r.Fix = fmt.Sprintf("add an A (and AAAA) record for %s pointing at this server's public address", c.Name)
	default:
		r.Status, r.Detail = OK, fmt.Sprintf("%s has %s", c.Name, strings.Join(addrs, ", "))
	}
	return addrs, r
}

// checkDNS01 asks c.DNS01 whether it may set the dns-01 record of c.Name.
func checkDNS01(ctx context.Context, c Config) Result {
	r := Result{Check: "dns-01 provider"}
	if c.DNS01 == nil {
		r.Status, r.Detail = Skip, "no DNS provider given"
		return r
	}
	err := c.DNS01.Check(ctx, c.Name)
	_, asked := c.DNS01.Provider.(dns01.AccessChecker)
	var loc dns01.Location
	lerr := errors.New("no zones given")
	if len(c.DNS01.Resolver.Zones) > 0 && err == nil {
		loc, lerr = c.DNS01.Locate(ctx, c.Name)
	}
	switch {
	case err != nil:
		r.Status, r.Detail = Fail, err.Error()
		r.Fix = "see the error: the key or API key, the zone, and the DNS server's address (docs/dns.md)"
	case lerr == nil && loc.Given == "":
		// A mistyped --dns-zone is remembered and warned at every renewal.
		r.Status = Warn
		r.Detail = fmt.Sprintf("the record %s is in none of the zones given (%s); its zone was looked up: %s",
			strings.TrimSuffix(loc.Record, "."), strings.Join(c.DNS01.Resolver.Zones, ", "), strings.TrimSuffix(loc.Zone, "."))
		r.Fix = "correct --dns-zone (a typo?), or leave it out and let the zone be looked up"
	case !asked:
		r.Status, r.Detail = Warn, "the record's zone was found, but this provider cannot be asked without setting a record: the first issuance tries it"
	default:
		r.Status, r.Detail = OK, fmt.Sprintf("the provider may set the record of %s (checked without setting it)", c.Name)
	}
	return r
}

// query asks server for name's records of type t, over UDP, then TCP if
// the answer was truncated.
func query(ctx context.Context, server, name string, t uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	m.RecursionDesired = true
	cl := &dns.Client{Timeout: 5 * time.Second}
	in, _, err := cl.ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		cl.Net = "tcp"
		in, _, err = cl.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, err
	}
	switch in.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return in.Answer, nil
	}
	return nil, fmt.Errorf("%s answered %s", server, dns.RcodeToString[in.Rcode])
}

// checkConnectBack serves a one-time token on each configured address and
// fetches it through each of the name's addresses.
func checkConnectBack(ctx context.Context, c Config, resolved []string) []Result {
	var out []Result
	for _, addr := range c.Addrs {
		r := Result{Check: "connect-back on " + addr}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			r.Status, r.Detail = Fail, err.Error()
			out = append(out, r)
			continue
		}
		if len(resolved) == 0 {
			r.Status, r.Detail = Skip, "the name does not resolve"
			out = append(out, r)
			continue
		}
		token := make([]byte, 16)
		rand.Read(token)
		want := "certkeeper-doctor " + hex.EncodeToString(token) + "\n"
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			r.Status, r.Detail = Skip, fmt.Sprintf("cannot listen on %s (%v); if certkeeper already runs there, it answers for itself", addr, err)
			out = append(out, r)
			continue
		}
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.WriteString(conn, want)
				conn.Close()
			}
		}()
		var failed []string
		for _, ip := range resolved {
			target := net.JoinHostPort(ip, port)
			got, err := fetchToken(ctx, target)
			switch {
			case err != nil:
				failed = append(failed, fmt.Sprintf("%s: %v", target, err))
			case got != want:
				failed = append(failed, fmt.Sprintf("%s: another server answers there", target))
			}
		}
		ln.Close()
		if len(failed) == 0 {
			r.Status, r.Detail = OK, fmt.Sprintf("%s reaches this host on port %s (from here; a CA connects from outside)", c.Name, port)
		} else {
			r.Status, r.Detail = Fail, "port "+port+" of "+c.Name+" does not reach this host: "+strings.Join(failed, "; ")
			r.Fix = fmt.Sprintf("open port %s in the firewall (and forward it to this host behind NAT), and check that %s's A/AAAA records point at this host", port, c.Name)
		}
		out = append(out, r)
	}
	return out
}

func fetchToken(ctx context.Context, target string) (string, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	data, err := io.ReadAll(io.LimitReader(conn, 256))
	if err != nil && len(data) == 0 {
		return "", err
	}
	return string(data), nil
}

// directory is the part of an ACME directory the checks need.
type directory struct {
	Meta struct {
		CAAIdentities []string `json:"caaIdentities"`
	} `json:"meta"`
}

// checkCA fetches the directory: reachable, and the clock against its
// Date header.
func checkCA(ctx context.Context, c Config) (*directory, []Result) {
	reach := Result{Check: "CA reachable"}
	clock := Result{Check: "clock"}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// Details show the URL as redact.URL gives it: never a password.
	where := redact.URL(c.DirectoryURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.DirectoryURL, nil)
	if err != nil {
		reach.Status, reach.Detail, reach.Fix = Fail, fmt.Sprintf("%s: %v", where, redact.Error(c.DirectoryURL, err)), "check --ca"
		clock.Status, clock.Detail = Skip, "the CA is unreachable"
		return nil, []Result{reach, clock}
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		reach.Status, reach.Detail = Fail, fmt.Sprintf("fetching %s: %v", where, redact.Error(c.DirectoryURL, err))
		reach.Fix = "check the --ca URL, outgoing HTTPS (firewall, proxy: HTTPS_PROXY), and --ca-roots for a CA with a private root"
		clock.Status, clock.Detail = Skip, "the CA is unreachable"
		return nil, []Result{reach, clock}
	}
	defer resp.Body.Close()
	rtt := time.Since(start)
	var dir directory
	if resp.StatusCode != http.StatusOK {
		reach.Status, reach.Detail = Fail, fmt.Sprintf("%s answered %s", where, resp.Status)
		reach.Fix = "check the --ca URL: it must be the ACME directory"
	} else if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&dir); err != nil {
		reach.Status, reach.Detail = Fail, fmt.Sprintf("%s is not an ACME directory: %v", where, err)
		reach.Fix = "check the --ca URL: it must be the ACME directory"
	} else {
		reach.Status, reach.Detail = OK, fmt.Sprintf("%s answered in %s", where, rtt.Round(time.Millisecond))
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		clock.Status, clock.Detail = Skip, "the CA sent no Date header"
	} else {
		// Date has a one-second resolution and was written during the
		// round trip.
		skew := start.Add(rtt / 2).Sub(date.Add(500 * time.Millisecond))
		clock.Detail = fmt.Sprintf("this host's clock is %s off the CA's", skew.Round(time.Second))
		if skew.Abs() > MaxClockSkew {
			clock.Status = Fail
			clock.Fix = "synchronise the clock: enable NTP (timedatectl set-ntp true, chrony or systemd-timesyncd)"
		} else {
			clock.Status = OK
		}
	}
	if reach.Status != OK {
		return nil, []Result{reach, clock}
	}
	return &dir, []Result{reach, clock}
}

// checkCAA finds the CAA record set that applies to the name (RFC 8659
// §3: the closest one walking up the tree) and checks it lets the CA
// issue.
func checkCAA(ctx context.Context, c Config, dir *directory) Result {
	r := Result{Check: "CAA"}
	server := c.Resolver
	if server == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(conf.Servers) == 0 {
			r.Status, r.Detail = Skip, "no DNS server to ask (give --dns-resolver)"
			return r
		}
		server = net.JoinHostPort(conf.Servers[0], conf.Port)
	}
	name := strings.TrimSuffix(c.Name, ".")
	wildcard := strings.HasPrefix(name, "*.")
	name = strings.TrimPrefix(name, "*.")
	for n := name; n != ""; {
		rrs, err := query(ctx, server, n, dns.TypeCAA)
		if err != nil {
			r.Status, r.Detail = Fail, fmt.Sprintf("looking up CAA for %s: %v", n, err)
			r.Fix = "the CA must get an answer for CAA (even an empty one): fix the DNS server, which the CA treats as forbidding issuance"
			if strings.Contains(err.Error(), "REFUSED") {
				r.Status = Warn
				r.Fix = "the server asked (" + server + ") refused to answer for " + n + ": an authoritative-only server answers only " +
					"for its own zones, not for the parents CAA is looked up at; ask a recursive resolver (--dns-resolver) to check what the CA sees"
			}
			return r
		}
		var set []*dns.CAA
		for _, rr := range rrs {
			if caa, ok := rr.(*dns.CAA); ok {
				set = append(set, caa)
			}
		}
		if len(set) > 0 {
			return judgeCAA(c.Name, n, set, wildcard, dir)
		}
		_, rest, ok := strings.Cut(n, ".")
		if !ok {
			break
		}
		n = rest
	}
	r.Status, r.Detail = OK, "no CAA records: any CA may issue"
	return r
}

// judgeCAA decides whether the CAA set at owner allows the CA (its
// directory's caaIdentities).
func judgeCAA(name, owner string, set []*dns.CAA, wildcard bool, dir *directory) Result {
	r := Result{Check: "CAA"}
	var ids []string
	if dir != nil {
		ids = dir.Meta.CAAIdentities
	}
	tag := "issue"
	if wildcard {
		for _, rr := range set {
			if strings.EqualFold(rr.Tag, "issuewild") {
				tag = "issuewild"
				break
			}
		}
	}
	var allowed, records []string
	for _, rr := range set {
		records = append(records, fmt.Sprintf("%d %s %q", rr.Flag, rr.Tag, rr.Value))
		if !strings.EqualFold(rr.Tag, tag) {
			continue
		}
		domain, _, _ := strings.Cut(rr.Value, ";")
		if domain = strings.TrimSpace(domain); domain != "" {
			allowed = append(allowed, domain)
		}
	}
	if len(ids) == 0 {
		r.Status = Warn
		r.Detail = fmt.Sprintf("%s has CAA %s; the CA does not say which domain identifies it, so whether it may issue is unknown", owner, strings.Join(records, ", "))
		r.Fix = "check that the records name your CA (Let's Encrypt: letsencrypt.org)"
		return r
	}
	for _, a := range allowed {
		for _, id := range ids {
			if strings.EqualFold(a, id) {
				r.Status, r.Detail = OK, fmt.Sprintf("%s has CAA %s, which allows %s", owner, strings.Join(records, ", "), id)
				return r
			}
		}
	}
	r.Status = Fail
	r.Detail = fmt.Sprintf("%s has CAA %s, which does not allow the CA (%s) to issue for %s", owner, strings.Join(records, ", "), strings.Join(ids, ", "), name)
	r.Fix = fmt.Sprintf("add the record %s. CAA 0 %s %q (beside the others), or remove the CAA records", owner, tag, ids[0])
	return r
}

// checkStorage writes, reads and deletes a key.
func checkStorage(ctx context.Context, c Config) Result {
	r := Result{Check: "storage writable"}
	if c.Storage == nil {
		r.Status, r.Detail = Skip, "no storage given"
		return r
	}
	key := storage.StateKey("doctor")
	value := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	err := c.Storage.Store(ctx, key, value)
	if err == nil {
		var got []byte
		if got, err = c.Storage.Load(ctx, key); err == nil && string(got) != string(value) {
			err = errors.New("read back something else than was written")
		}
	}
	if err == nil {
		err = c.Storage.Delete(ctx, key)
	}
	if err != nil {
		r.Status, r.Detail = Fail, err.Error()
		r.Fix = storageFix(err)
		return r
	}
	r.Status, r.Detail = OK, "stored, read back and deleted a test key"
	return r
}

// checkDurability asks the storage's server (Redis, PostgreSQL) whether its
// settings may lose what certkeeper stores: a warning, since certkeeper
// works until the server restarts or crashes.
func checkDurability(ctx context.Context, c Config) Result {
	r := Result{Check: "storage durability"}
	st := c.Storage
	if e, ok := st.(*encrypted.Store); ok {
		st = e.Storage
	}
	if st == nil {
		r.Status, r.Detail = Skip, "no storage given"
		return r
	}
	dc, ok := st.(storage.DurabilityChecker)
	_, dir := st.(*filestore.Store)
	if !ok || dir {
		r.Status, r.Detail = OK, "every write is made durable before it is used"
	}
	if !ok {
		return r
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	risks, err := dc.CheckDurability(cctx)
	switch {
	case err != nil:
		r.Status, r.Detail = Warn, "cannot be checked: "+err.Error()
		r.Fix = "make sure the server persists what certkeeper stores (Redis: appendonly yes; PostgreSQL: fsync on), or give its user the right to read its settings"
	case len(risks) > 0:
		r.Status, r.Detail = Warn, strings.Join(risks, "; ")
		r.Fix = "change the setting named above (docs/storage.md says which backend suits which deployment)"
		if dir && strings.Contains(r.Detail, " KiB free") { // filestore's low-space risk
			r.Fix = storageFix(syscall.ENOSPC)
		} else if dir {
			r.Fix = "chmod 700 the --storage directory: only the user certkeeper runs as needs it"
		}
	case r.Detail == "":
		r.Status, r.Detail = OK, "the server persists what is stored"
	}
	return r
}

// checkAccount checks the stored account with the CA, if there is one.
func checkAccount(ctx context.Context, c Config, caUp bool) Result {
	r := Result{Check: "account"}
	if c.Storage == nil {
		r.Status, r.Detail = Skip, "no storage given"
		return r
	}
	iss := &acmeca.Issuer{DirectoryURL: c.DirectoryURL, Email: c.Email, Storage: c.Storage, HTTPClient: c.HTTPClient}
	if has, err := iss.HasAccount(ctx); err != nil || !has {
		r.Status, r.Detail = OK, "no account yet: one is registered at the first issuance"
		return r
	}
	if !caUp {
		r.Status, r.Detail = Skip, "the CA is unreachable"
		return r
	}
	acct, err := iss.AccountStatus(ctx)
	switch {
	case errors.Is(err, acmeca.ErrAccountDeactivated):
		r.Status, r.Detail = Fail, err.Error()
		r.Fix = "a deactivated account cannot order: use another --email (a new account is registered), or remove the old one from storage (accounts/)"
	case errors.Is(err, acmeca.ErrAccountKeyDamaged):
		r.Status, r.Detail = Fail, err.Error()
		r.Fix = "restore the account key from a backup; or remove the key and its record (named above: files under a --storage directory) and a new account is registered at the next order"
	case err != nil:
		r.Status, r.Detail = Fail, err.Error()
		r.Fix = "certkeeper account recover (when the CA lost the account), or certkeeper account show for details"
	case acct.Status != "valid":
		r.Status, r.Detail = Fail, fmt.Sprintf("the account %s is %s", acct.Location, acct.Status)
		r.Fix = "a deactivated or revoked account cannot order: remove it from storage (accounts/) to register a new one"
	default:
		r.Status, r.Detail = OK, fmt.Sprintf("%s is valid", acct.Location)
	}
	return r
}

// storageFix is the advice for a storage that could not store a test
// value: a full disk or a read-only file system is no matter of users.
func storageFix(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "free space on the file system holding --storage (df -h; a quota: quota -s): until then new certificates and renewals fail, and a certificate issued is kept only in memory"
	case errors.Is(err, syscall.EROFS):
		return "remount the file system holding --storage read-write, or choose a directory on a writable one (systemd: StateDirectory= or ReadWritePaths=)"
	}
	return "make --storage writable by certkeeper's user (systemd: StateDirectory= or ReadWritePaths=)"
}
