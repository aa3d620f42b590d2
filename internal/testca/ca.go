package testca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// readyTimeout bounds how long Pebble and pebble-challtestsrv may take to
// answer after they start; generous because the machine is shared.
const readyTimeout = 20 * time.Second

// defaultValidity is the validity of the "default" profile when Options
// names no profile: Let's Encrypt's classic 90 days.
const defaultValidity = 90 * 24 * time.Hour

// Options configures the Pebble that [Start] runs. The zero value is a CA for
// deterministic tests: no nonce rejection, no authorization reuse, no
// validation sleeps, one profile, one chain with one intermediate.
type Options struct {
	// NonceReject is the percentage (0–100) of valid nonces Pebble rejects
	// as bad (PEBBLE_WFE_NONCEREJECT); fault tests raise it. Zero means
	// none. (Pebble's own default, when the variable is unset, is 5, so
	// testca always sets it.)
	NonceReject int

	// AuthzReuse is the percentage (0–100) of orders in which Pebble reuses
	// a valid authorization for the same identifier (PEBBLE_AUTHZREUSE).
	// Zero means never. (Pebble's own default is 50.)
	AuthzReuse int

	// AlternateRoots is the number of extra chains Pebble offers, each under
	// its own root (PEBBLE_ALTERNATE_ROOTS). Zero means one chain.
	AlternateRoots int

	// ChainLength is the number of intermediates between a leaf and its root
	// (PEBBLE_CHAIN_LENGTH). Zero means 1.
	ChainLength int

	// Profiles are the certificate profiles Pebble offers, by name; the
	// directory's meta.profiles lists them. Nil means one profile, "default",
	// of 90 days.
	//
	// Pebble gives an order that names no profile a RANDOM one of its
	// profiles: a test that wants deterministic certificates names the
	// profile in its orders or configures a single profile.
	Profiles map[string]Profile

	// EAB holds external account binding MAC keys: key ID to HMAC key in
	// unpadded base64url, as Pebble's externalAccountMACKeys takes them.
	EAB map[string]string

	// EABRequired makes Pebble refuse newAccount requests without an external
	// account binding, and sets meta.externalAccountRequired.
	EABRequired bool

	// HTTPPort and TLSPort are the ports Pebble's validation authority
	// connects to for http-01 and tls-alpn-01 on 127.0.0.1 (every name
	// resolves there); tests run their solvers on them. Zero means a port
	// Start chooses: [CA.HTTPPort] and [CA.TLSPort] tell which.
	HTTPPort, TLSPort int

	// RetryAfterAuthz and RetryAfterOrder are the Retry-After Pebble sends
	// while an authorization, or an order being finalized, is processing
	// (whole seconds, rounded up; Pebble picks seconds or an HTTP date at
	// random). Zero sends none.
	RetryAfterAuthz, RetryAfterOrder time.Duration

	// DomainBlocklist lists names Pebble refuses orders for with
	// rejectedIdentifier; a name blocks its subdomains too.
	DomainBlocklist []string

	// KeyAlgorithm is the key type of Pebble's roots and intermediates,
	// "ecdsa" or "rsa" (not of the certificates it issues, whose key is the
	// CSR's). Empty means "ecdsa", which starts faster than Pebble's own
	// default, "rsa".
	KeyAlgorithm string

	// AlwaysValid makes every challenge valid without Pebble contacting
	// anyone (PEBBLE_VA_ALWAYS_VALID), for tests of what comes after
	// validation.
	AlwaysValid bool

	// DNSServer, if set, is the host:port of the DNS server Pebble resolves
	// names and looks up TXT records through (testsvc.Named, say) instead of
	// a pebble-challtestsrv started for it. The CA's record helpers (AddA,
	// AddTXT, ...) then fail the test.
	DNSServer string
}

// Profile is a certificate profile Pebble offers.
type Profile struct {
	// Description is shown in the directory's meta.profiles.
	Description string
	// ValidityPeriod is NotAfter − NotBefore + 1s of the certificates
	// issued under the profile (Pebble sets NotAfter one second early),
	// rounded up to whole seconds. Zero means 90 days.
	ValidityPeriod time.Duration
}

// CA is a running Pebble ACME server and the pebble-challtestsrv DNS server
// it resolves names through, both children of the test that started them
// and both on free 127.0.0.1 ports. Its methods are safe for concurrent use.
type CA struct {
	t    testing.TB // the test that owns the processes
	opts Options
	bins binaries
	id   *identity

	configFile string
	rootFile   string
	env        []string

	listenAddr string // Pebble's ACME listener, host:port
	mgmtAddr   string // Pebble's management listener, host:port
	httpPort   int
	tlsPort    int
	dnsAddr    string // what Pebble resolves through
	challMgmt  string // pebble-challtestsrv's management host:port; "" with Options.DNSServer

	transport *http.Transport // trusts the listener root

	mu     sync.Mutex // guards pebble; held across Stop and Restart
	pebble *testsvc.Process

	watch atomic.Pointer[logWatch] // the log of the Pebble now running
}

// Start runs pebble-challtestsrv and Pebble for the test t and waits until
// both answer. They are killed when the test ends, and their output is
// printed if it failed.
//
// The binaries come from $CERTKEEPER_PEBBLE_DIR if set, else they are built
// once from tools/go.mod into a cache shared by every test process (see
// [PebbleDirEnv]). If they cannot be had, Start skips the test, or fails it
// under CI=true.
//
// Pebble's HTTPS listeners present a certificate for 127.0.0.1, ::1 and
// localhost from a root made by this test process: [CA.RootPool],
// [CA.RootsPEM], [CA.ListenerRootFile] and [CA.HTTPClient] trust it. Every
// name resolves to 127.0.0.1 (A records only, so that validation never
// tries ::1), and PEBBLE_VA_NOSLEEP=1 is always set.
func Start(t testing.TB, opts Options) *CA {
	t.Helper()
	if err := opts.validate(); err != nil {
		t.Fatalf("testca: %v", err)
	}
	// Restart reuses opts: later changes by the caller must not leak in.
	opts.Profiles = maps.Clone(opts.Profiles)
	opts.EAB = maps.Clone(opts.EAB)
	opts.DomainBlocklist = slices.Clone(opts.DomainBlocklist)
	bins := pebbleBinaries(t)
	id, err := listenerIdentity()
	if err != nil {
		t.Fatalf("testca: making the listener certificate: %v", err)
	}
	dir := t.TempDir()
	c := &CA{
		t:          t,
		opts:       opts,
		bins:       bins,
		id:         id,
		configFile: filepath.Join(dir, "pebble-config.json"),
		rootFile:   filepath.Join(dir, "listener-root.pem"),
		env:        pebbleEnv(opts),
		httpPort:   opts.HTTPPort,
		tlsPort:    opts.TLSPort,
		dnsAddr:    opts.DNSServer,
		transport:  newTransport(id.pool()),
	}
	t.Cleanup(c.transport.CloseIdleConnections)
	for name, data := range map[string][]byte{
		"listener.pem":      id.certPEM,
		"listener.key":      id.keyPEM,
		"listener-root.pem": id.rootPEM,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatalf("testca: %v", err)
		}
	}
	if c.httpPort == 0 {
		c.httpPort = testsvc.FreePort(t)
	}
	if c.tlsPort == 0 {
		c.tlsPort = testsvc.FreePort(t)
	}
	if c.dnsAddr == "" {
		if err := testsvc.RetryPorts(c.startChalltestsrv); err != nil {
			t.Fatalf("testca: starting pebble-challtestsrv: %v", err)
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	err = testsvc.RetryPorts(func() error {
		c.listenAddr = loopback(testsvc.FreePort(t))
		c.mgmtAddr = loopback(testsvc.FreePort(t))
		if err := c.writeConfig(filepath.Dir(c.configFile)); err != nil {
			return err
		}
		return c.startPebble()
	})
	if err != nil {
		t.Fatalf("testca: starting pebble: %v", err)
	}
	return c
}

func (o Options) validate() error {
	for name, pct := range map[string]int{"NonceReject": o.NonceReject, "AuthzReuse": o.AuthzReuse} {
		if pct < 0 || pct > 100 {
			return fmt.Errorf("Options: %s = %d, want a percentage 0–100", name, pct)
		}
	}
	if o.AlternateRoots < 0 || o.ChainLength < 0 {
		return fmt.Errorf("Options.AlternateRoots = %d, ChainLength = %d: want ≥ 0", o.AlternateRoots, o.ChainLength)
	}
	if o.RetryAfterAuthz < 0 || o.RetryAfterOrder < 0 {
		return errors.New("Options.RetryAfterAuthz and RetryAfterOrder must not be negative")
	}
	for name, p := range o.Profiles {
		if name == "" || p.ValidityPeriod < 0 {
			return fmt.Errorf("Options.Profiles[%q]: want a name and a validity ≥ 0", name)
		}
	}
	switch o.KeyAlgorithm {
	case "", "ecdsa", "rsa":
	default:
		return fmt.Errorf("Options.KeyAlgorithm = %q, want \"ecdsa\" or \"rsa\"", o.KeyAlgorithm)
	}
	return nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// pebbleEnv returns the environment for Pebble: the test's, without any
// PEBBLE_ variable a developer may have set, plus the ones opts decides.
func pebbleEnv(opts Options) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PEBBLE_") })
	env = append(env,
		"PEBBLE_VA_NOSLEEP=1",
		"PEBBLE_WFE_NONCEREJECT="+strconv.Itoa(opts.NonceReject),
		"PEBBLE_AUTHZREUSE="+strconv.Itoa(opts.AuthzReuse),
		"PEBBLE_ALTERNATE_ROOTS="+strconv.Itoa(opts.AlternateRoots),
	)
	if opts.ChainLength > 0 {
		env = append(env, "PEBBLE_CHAIN_LENGTH="+strconv.Itoa(opts.ChainLength))
	}
	if opts.AlwaysValid {
		env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	return env
}

// pebbleConfig is Pebble's JSON configuration (cmd/pebble/main.go).
type pebbleConfig struct {
	Pebble struct {
		ListenAddress                  string                   `json:"listenAddress"`
		ManagementListenAddress        string                   `json:"managementListenAddress"`
		HTTPPort                       int                      `json:"httpPort"`
		TLSPort                        int                      `json:"tlsPort"`
		Certificate                    string                   `json:"certificate"`
		PrivateKey                     string                   `json:"privateKey"`
		ExternalAccountBindingRequired bool                     `json:"externalAccountBindingRequired"`
		ExternalAccountMACKeys         map[string]string        `json:"externalAccountMACKeys,omitempty"`
		DomainBlocklist                []string                 `json:"domainBlocklist,omitempty"`
		KeyAlgorithm                   string                   `json:"keyAlgorithm"`
		Profiles                       map[string]pebbleProfile `json:"profiles"`
		RetryAfter                     struct {
			Authz int `json:"authz"`
			Order int `json:"order"`
		} `json:"retryAfter"`
	} `json:"pebble"`
}

type pebbleProfile struct {
	Description    string `json:"description"`
	ValidityPeriod uint64 `json:"validityPeriod"` // seconds
}

func (c *CA) writeConfig(dir string) error {
	var cfg pebbleConfig
	p := &cfg.Pebble
	p.ListenAddress = c.listenAddr
	p.ManagementListenAddress = c.mgmtAddr
	p.HTTPPort = c.httpPort
	p.TLSPort = c.tlsPort
	p.Certificate = filepath.Join(dir, "listener.pem")
	p.PrivateKey = filepath.Join(dir, "listener.key")
	p.ExternalAccountBindingRequired = c.opts.EABRequired
	p.ExternalAccountMACKeys = c.opts.EAB
	p.DomainBlocklist = c.opts.DomainBlocklist
	p.KeyAlgorithm = c.opts.KeyAlgorithm
	if p.KeyAlgorithm == "" {
		p.KeyAlgorithm = "ecdsa"
	}
	profiles := c.opts.Profiles
	if len(profiles) == 0 {
		profiles = map[string]Profile{"default": {Description: "The default profile", ValidityPeriod: defaultValidity}}
	}
	p.Profiles = make(map[string]pebbleProfile, len(profiles))
	for name, prof := range profiles {
		if prof.ValidityPeriod == 0 {
			prof.ValidityPeriod = defaultValidity
		}
		p.Profiles[name] = pebbleProfile{Description: prof.Description, ValidityPeriod: seconds(prof.ValidityPeriod)}
	}
	p.RetryAfter.Authz = int(seconds(c.opts.RetryAfterAuthz))
	p.RetryAfter.Order = int(seconds(c.opts.RetryAfterOrder))

	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.configFile, data, 0o600)
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) uint64 {
	return uint64((d + time.Second - 1) / time.Second)
}

// startChalltestsrv runs pebble-challtestsrv with only its DNS server (UDP
// and TCP) and its management API, answering A queries with 127.0.0.1 and
// AAAA queries with nothing: Pebble's VA asks AAAA first and would otherwise
// connect to ::1, where test solvers do not listen.
func (c *CA) startChalltestsrv() error {
	c.dnsAddr = loopback(testsvc.FreePort(c.t))
	c.challMgmt = loopback(testsvc.FreePort(c.t))
	cmd := exec.Command(c.bins.challtestsrv,
		"-dnsserver", c.dnsAddr,
		"-management", c.challMgmt,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
	)
	p, err := testsvc.StartProcess(c.t, cmd, nil)
	if err != nil {
		return err
	}
	return p.WaitReady(readyTimeout, func(ctx context.Context) error {
		for _, addr := range []string{c.dnsAddr, c.challMgmt} { // Pebble queries DNS over TCP
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			conn.Close()
		}
		return nil
	})
}

// startPebble runs Pebble on the configured addresses with a fresh log and
// waits until both listeners answer. c.mu must be held.
func (c *CA) startPebble() error {
	w := newLogWatch()
	c.watch.Store(w)
	cmd := exec.Command(c.bins.pebble, "-config", c.configFile, "-dnsserver", c.dnsAddr)
	cmd.Env = c.env
	p, err := testsvc.StartProcess(c.t, cmd, w.line)
	if err != nil {
		return err
	}
	c.pebble = p
	client := c.HTTPClient()
	return p.WaitReady(readyTimeout, func(ctx context.Context) error {
		for _, u := range []string{c.DirectoryURL(), c.ManagementURL() + "/roots/0"} {
			if _, err := get(ctx, client, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// Stop kills Pebble (not pebble-challtestsrv): the CA is then unreachable,
// its addresses refuse connections. The counters keep their values. Stop
// may be called more than once.
func (c *CA) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
}

func (c *CA) stopLocked() {
	if c.pebble != nil {
		// A process that outlives SIGKILL is reported by the cleanup that
		// StartProcess registered, which stops it again.
		_ = c.pebble.Stop()
	}
	c.transport.CloseIdleConnections()
}

// Quit makes a running Pebble write the stacks of all its goroutines to
// its output and exit (SIGQUIT; where the system cannot send it, Quit
// does nothing), and waits up to 10 s for it to end. It is for a test
// that failed with Pebble not answering: the output, stacks included, is
// logged when the test ends. Like Stop, it leaves the CA unreachable.
func (c *CA) Quit() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pebble == nil {
		return
	}
	proc, err := os.FindProcess(c.pebble.Pid())
	if err != nil || proc.Signal(syscall.SIGQUIT) != nil {
		return
	}
	select {
	case <-c.pebble.Done():
	case <-time.After(10 * time.Second):
	}
}

// Restart kills Pebble, if it runs, and starts a new one on the same
// addresses with the same options. The new Pebble has none of the old one's
// state (accounts, orders, authorizations, certificates, roots and
// intermediates are new), and the counters start again from zero.
// pebble-challtestsrv keeps running, with the records added to it.
//
// t is the test to fail if Pebble cannot start again (its port was taken,
// say); the process still belongs to the test that called Start.
//
// A client that caches the directory by URL (acmez does, for 12 h) keeps
// working: Pebble's endpoint paths are fixed.
func (c *CA) Restart(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
	if err := c.startPebble(); err != nil {
		t.Fatalf("testca: restarting pebble on %s: %v", c.listenAddr, err)
	}
}

// DirectoryURL returns the ACME directory URL, https://127.0.0.1:PORT/dir.
func (c *CA) DirectoryURL() string { return "https://" + c.listenAddr + "/dir" }

// ManagementURL returns the base URL of Pebble's management API,
// https://127.0.0.1:PORT, which serves /roots/N, /intermediates/N,
// /cert-status-by-serial/ and /set-renewal-info/.
func (c *CA) ManagementURL() string { return "https://" + c.mgmtAddr }

// HTTPPort returns the port Pebble validates http-01 challenges on.
func (c *CA) HTTPPort() int { return c.httpPort }

// TLSPort returns the port Pebble validates tls-alpn-01 challenges on.
func (c *CA) TLSPort() int { return c.tlsPort }

// DNSAddr returns the host:port of the DNS server Pebble resolves names
// and TXT records through: the pebble-challtestsrv testca started, or
// Options.DNSServer.
func (c *CA) DNSAddr() string { return c.dnsAddr }

// RootPool returns a new pool holding only the root that Pebble's HTTPS
// listeners (and every FaultProxy) chain to. It does not hold the roots
// Pebble issues under: see IssuingRootPool.
func (c *CA) RootPool() *x509.CertPool { return c.id.pool() }

// RootsPEM returns the listener root in PEM, as RootPool holds it.
func (c *CA) RootsPEM() []byte { return slices.Clone(c.id.rootPEM) }

// ListenerRootFile returns the path of a file holding RootsPEM, for command
// lines such as --ca-roots.
func (c *CA) ListenerRootFile() string { return c.rootFile }

// HTTPClient returns a new client that trusts the listener root, to give to
// an ACME client. The clients of one CA share a transport, whose idle
// connections Stop and Restart close. It has no overall timeout: bound
// requests with their context.
func (c *CA) HTTPClient() *http.Client { return &http.Client{Transport: c.transport} }

func newTransport(pool *x509.CertPool) *http.Transport {
	return &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
	}
}

// IssuingRoots returns the roots Pebble issues under, fetched from its
// management API: /roots/0, then /roots/N for each alternate root. They are
// new after every Restart.
func (c *CA) IssuingRoots(t testing.TB) []*x509.Certificate {
	t.Helper()
	var roots []*x509.Certificate
	for i := 0; i <= c.opts.AlternateRoots; i++ {
		roots = append(roots, c.fetchCert(t, fmt.Sprintf("/roots/%d", i)))
	}
	return roots
}

// IssuingRootPool returns a pool of IssuingRoots, to verify the certificates
// Pebble issues.
func (c *CA) IssuingRootPool(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, r := range c.IssuingRoots(t) {
		pool.AddCert(r)
	}
	return pool
}

// fetchCert GETs a PEM certificate from the management API.
func (c *CA) fetchCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := get(ctx, c.HTTPClient(), c.ManagementURL()+path)
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	block, _ := pem.Decode(body)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("testca: GET %s: no PEM certificate in %q", path, body)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("testca: GET %s: %v", path, err)
	}
	return cert
}

// SetRenewalWindow makes Pebble answer ARI requests (RFC 9773) for leaf
// with the window [start, end] and explanation (an explanationURL; ""
// for none), as a CA does that wants a certificate replaced early (an
// incident, a revocation ahead), through its management API's
// /set-renewal-info/.
func (c *CA) SetRenewalWindow(t testing.TB, leaf *x509.Certificate, start, end time.Time, explanation string) {
	t.Helper()
	info := map[string]any{"suggestedWindow": map[string]time.Time{"start": start.UTC(), "end": end.UTC()}}
	if explanation != "" {
		info["explanationURL"] = explanation
	}
	window, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]string{
		"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
		"ariResponse": string(window),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.ManagementURL()+"/set-renewal-info/", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "certkeeper-testca")
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("testca: setting the renewal window: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("testca: setting the renewal window: %s: %q", resp.Status, msg)
	}
}

// get fetches url and returns its body if the status is 200.
func get(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "certkeeper-testca") // Pebble refuses requests without one
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %q", url, resp.Status, body)
	}
	return body, nil
}

// Profiles returns the names of the profiles the CA offers, sorted.
func (c *CA) Profiles() []string {
	if len(c.opts.Profiles) == 0 {
		return []string{"default"}
	}
	return slices.Sorted(maps.Keys(c.opts.Profiles))
}
