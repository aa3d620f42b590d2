package certkeeper

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/http01"
	"github.com/certkeeper/certkeeper/solver/tlsalpn01"
	"github.com/certkeeper/certkeeper/stapling"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Manager obtains, stores, serves and renews certificates. Its zero value is
// usable: Let's Encrypt production, ECDSA P-256 keys, filesystem storage in
// the user's data directory, and no names allowed until Policy says so.
//
// Set the fields before first use; they must not change afterwards. A
// Manager must not be copied after first use. Close stops its background
// work.
type Manager struct {
	// Policy decides which names may get certificates on demand, at their
	// first handshake. Nil allows no name: every unknown name is refused
	// without any request to a CA. Names given to Cert are always allowed.
	Policy policy.Policy

	// Issuers is the fallback chain of issuers: each certificate comes from
	// the first that succeeds. Nil or empty means Let's Encrypt
	// production. An
	// *acmeca.Issuer whose Solvers is nil answers challenges through this
	// Manager (its TLSConfig and HTTPHandler), one whose Storage is nil
	// keeps its account in Storage, and one without Email, Profile or
	// AgreeTerms uses the Manager's.
	Issuers []issuer.Issuer

	// Storage keeps accounts, keys and certificates. Nil means a filestore
	// in DefaultStorageDir().
	Storage storage.Storage

	// Email is the ACME account contact: the default issuer's, and that
	// of each *acmeca.Issuer in Issuers or Rules whose own Email is empty.
	Email string

	// AgreeTerms is asked before an ACME account is registered, with the
	// CA's terms-of-service URL (rsc.io/letsencrypt's prompt); returning
	// false stops the registration. Nil agrees. It applies to ACME issuers
	// whose own AgreeTerms is nil.
	AgreeTerms func(tosURL string) bool

	// KeyType is the key type of new certificates. Zero means ECDSA P-256.
	KeyType issuer.KeyType

	// Profile is the ACME profile to order: the default issuer's, and
	// that of each *acmeca.Issuer in Issuers or Rules whose own Profile
	// is empty. Empty lets the CA choose.
	Profile string

	// Rules give names matching a pattern their own issuers or key type;
	// the first matching rule applies.
	Rules []NameRule

	// Wildcards are wildcard names ("*.a.example") whose subdomains share
	// one certificate: the first on-demand handshake for any x.a.example
	// (or a.example itself) obtains *.a.example + a.example, once, and
	// every other subdomain is served from it with no further order.
	// Policy still decides each handshake's name, and the issuers need a
	// dns-01 or dns-persist-01 solver (CAs validate wildcards only through
	// DNS): Start fails for an entry whose issuers have none, or that is
	// no *.ZONE.
	Wildcards []string

	// RSAFallback also obtains an RSA certificate for each name, served to
	// clients that cannot use ECDSA (autocert and lets-proxy do the same).
	// Off by default: every client of the last decade supports ECDSA.
	// A name whose own key type is RSA already (KeyType, or a rule's)
	// gets no second certificate: its one serves every client.
	// Certificates from CertFiles are served as they are (an ECDSA pair
	// fails a client that cannot use ECDSA).
	RSAFallback bool

	// DefaultName is served to clients that send no SNI (lets-proxy's
	// non-SNI default). Empty refuses them. It may be an IP address (the
	// one clients connect to: they send no SNI for it), for an IP
	// certificate, which Policy must allow (policy.Allowlist takes IP
	// literals) and the CA must issue (at Let's Encrypt: the shortlived
	// profile).
	DefaultName string

	// CacheSize bounds the certificates held in memory. Zero means 10,000.
	// Evicted certificates are loaded again from storage when needed, so a
	// Manager can serve far more names than it holds: of a certificate not
	// in memory it keeps only the storage key, the renewal time and the
	// last-seen time, its primary name and dates (for Stats: about 270
	// bytes in all), and renews it from storage.
	CacheSize int

	// IssueTimeout bounds one issuance (all issuers of the chain). Zero
	// means 5 minutes. A handshake waits for an issuance only as long as
	// its own context allows, and at most 2 seconds past IssueTimeout
	// even if the issuance does not end (a storage read that hangs); the
	// issuance goes on for later handshakes.
	IssueTimeout time.Duration

	// HandshakeWait bounds how long a handshake waits for its name's
	// certificate to be obtained; zero waits as long as IssueTimeout
	// allows. A handshake that stops waiting fails; the issuance goes on,
	// and the handshakes after it get its certificate. (A client left
	// minutes on a CA that does not answer learns no more than one told
	// after half a minute: the proxy's --issue-timeout sets 30 seconds.)
	HandshakeWait time.Duration

	// UnusedAfter stops renewing an on-demand certificate that no
	// handshake has asked for in this long. Zero means 30 days. Names
	// given to Cert are renewed regardless.
	UnusedAfter time.Duration

	// MaxNames caps the certificates this Manager's storage may hold
	// before on-demand issuance stops (names given to Cert still work).
	// Zero means no cap.
	MaxNames int

	// ClientLimit limits how many on-demand issuances one client address
	// (an IPv4 address or IPv6 /64) may start, so one client cannot spend
	// the CA account's budget. Nil means a burst of 60, then one every 3
	// minutes. A limiter set here uses its own defaults for the fields
	// left zero (IPLimiter's burst is 10, not 60): set Burst with Rate.
	ClientLimit *policy.IPLimiter

	// OnEvent, if set, is called for every Event (obtained, renewed,
	// renewal failed, denied, ...). It is called from the goroutine that
	// did the work, never from a cached handshake; it must not block long.
	OnEvent func(Event)

	// Logger receives the Manager's logs. Nil means slog.Default().
	Logger *slog.Logger

	// Explain, if set, words a failed issuance's or renewal's error as
	// the failures kept for status (certkeeper status, its --nagios
	// check, the status page, alerts) and the IssuerFailed and
	// RenewalFailed events say it; errors.Is and errors.As still see the
	// error. A command line names its flags there for the fields the
	// libraries' errors name (Provider.Server: --dns-server), as its
	// log does. Nil means the error's own text.
	Explain func(error) string

	// Cluster tunes how Managers sharing Storage on several nodes act as
	// one; its zero value works (see Cluster).
	Cluster Cluster
	// CertFiles are certificates obtained elsewhere, served for the names
	// they cover (exactly, or through a one-label wildcard) whatever
	// Policy says, and never renewed. On-demand issuance and storage are
	// not consulted for those names, but a certificate already in memory
	// for the name comes first: one obtained before, or given to Cert
	// with names the files do not all serve (Cert orders nothing for
	// names they all serve).
	// Start, and the first use, fail if a pair cannot be read. The files
	// are checked every CertFileCheck and read again when they change;
	// a pair that does not load (half-written, a key that does not
	// match) leaves the previous certificate serving, is logged at Warn
	// (when the failure starts or changes, then hourly) and is reported
	// by CertFileStatus, which also says when one is near its expiry.
	CertFiles []CertFile

	// CertFileCheck is how often CertFiles are checked for changes. Zero
	// means 5 seconds.
	CertFileCheck time.Duration

	// SelfSignedFallback serves a self-signed certificate, made in memory
	// and never stored, to handshakes for names that cannot get a real
	// one (refused, or issuance failing) instead of failing them: ECDSA,
	// or RSA for a client that cannot use ECDSA (whatever RSAFallback
	// says; the RSA ones share one key, made at the first).
	SelfSignedFallback bool

	initOnce sync.Once
	initErr  error
	store    storage.Storage
	issuers  []issuer.Issuer
	cache    *certCache
	rsaCache *certCache
	flight   singleflight.Group
	http01   http01.Solver
	alpn     tlsalpn01.Solver
	watchers watchers
	renew    renewer
	lim      limits
	hk       housekeeping
	clu      clusterState
	stats    stats // handshake counters (stats.go)
	staples  stapling.Keeper
	manual   manualCerts
	others   otherNames // stored certificates by their other names (othernames.go)
	fallback fallbackCerts
	refused  refusals      // which refused names are logged (refusals.go)
	limited  refusals      // the same for names the policy allows that a limit held back: a flood of refused names does not hide them
	releases issueReleases // issue locks being released in the background (obtain.go)
	unstored sync.Map      // storage key → *UnstoredError not yet stored (unstored.go)
	// unstoredEvery, set by tests, replaces unstoredRetryEvery.
	unstoredEvery time.Duration
	// ariEvery, set by tests, replaces the 11 to 12 hours between checks
	// of a certificate's ARI window (firstCheck, nextCheck).
	ariEvery time.Duration
	// loadWarn paces the warning of a handshake that could not read
	// storage: during an outage every new name, a scanner's random ones
	// included, would log one.
	loadWarn rate.Sometimes
	// loadFailing is set while a handshake's load from storage fails,
	// cleared (and logged, storageAnswers) at the first that succeeds.
	loadFailing atomic.Bool
	// node identifies this Manager in the marks it leaves in stored
	// records (renewfailed.go).
	node string

	// health is the Manager's health check (Health), set up once.
	health     Health
	healthOnce sync.Once

	closeOnce sync.Once
	ctx       context.Context // canceled by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup // background goroutines, and on-demand flights (track)
	// flightMu orders track's wg.Add before Close's wg.Wait: a flight
	// starts before Close, and is waited for, or not at all.
	flightMu sync.RWMutex
}

// loadWarnInterval paces the warning of a handshake that could not read
// storage (Manager.loadWarn).
const loadWarnInterval = 10 * time.Second

// ErrClosed is the error of a handshake that needed a certificate obtained
// or loaded after Close, and of Cert after Close: a closed Manager serves
// only what it holds.
var ErrClosed = errors.New("the Manager is closed: it obtains no more certificates")

// track counts a flight (an on-demand load or issuance) for Close to wait
// for, or reports false if Close has begun. The caller calls m.wg.Done.
func (m *Manager) track() bool {
	m.flightMu.RLock()
	defer m.flightMu.RUnlock()
	if m.ctx.Err() != nil {
		return false
	}
	m.wg.Add(1)
	return true
}

// ErrNoPolicy is returned by Serve, ServeHTTPS and on-demand handshakes of
// a Manager that allows no names.
var ErrNoPolicy = errors.New(`no names allowed: set Policy, e.g. policy.Allowlist("example.com")`)

// DefaultStorageDir is where a Manager with no Storage keeps its state:
// under systemd, the service's state directory ($STATE_DIRECTORY, set by
// StateDirectory=; the first if several) when it is named "certkeeper",
// else its "certkeeper" subdirectory; outside systemd /var/lib/certkeeper
// for root on unix, else the user's data directory ($XDG_DATA_HOME or
// ~/.local/share on Linux and the BSDs, ~/Library/Application Support on
// macOS, %LocalAppData% on Windows) plus "certkeeper". The certkeeper
// service running as its own user (deploy/certkeeper.service:
// StateDirectory=certkeeper) and root's one-off commands (status, cert
// revoke -d) so meet in /var/lib/certkeeper, where the user's default put
// the service's state under its home's .local/share.
func DefaultStorageDir() string {
	if d, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":"); filepath.IsAbs(d) {
		if filepath.Base(d) == "certkeeper" {
			return d
		}
		return filepath.Join(d, "certkeeper")
	}
	switch runtime.GOOS {
	case "windows":
		if d := os.Getenv("LocalAppData"); d != "" {
			return filepath.Join(d, "certkeeper")
		}
	case "darwin":
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, "Library", "Application Support", "certkeeper")
		}
	default:
		if os.Geteuid() == 0 {
			return "/var/lib/certkeeper"
		}
		if d := os.Getenv("XDG_DATA_HOME"); d != "" {
			return filepath.Join(d, "certkeeper")
		}
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, ".local", "share", "certkeeper")
		}
	}
	return "certkeeper-data"
}

// init sets up the defaults once.
func (m *Manager) init() error {
	m.initOnce.Do(func() {
		m.ctx, m.cancel = context.WithCancel(context.Background())
		m.store = m.Storage
		if m.store == nil {
			m.store = filestore.New(DefaultStorageDir())
		}
		m.cache = newCertCache(m.CacheSize)
		m.rsaCache = newCertCache(m.CacheSize)
		m.lim.clients = newDefaultClientLimiter()
		m.lim.unknown = rate.NewLimiter(unknownLookupRate, unknownLookupBurst)
		m.loadWarn.Interval = loadWarnInterval
		m.initDuplicates()
		m.node = newNodeID()
		m.http01.Logger = m.Logger
		m.alpn.Logger = m.Logger
		m.staples.Storage, m.staples.Logger = m.store, m.Logger
		if m.initErr = m.checkFields(); m.initErr != nil {
			return // before anything calls into them
		}
		m.issuers = m.Issuers
		if len(m.issuers) == 0 {
			m.issuers = []issuer.Issuer{&acmeca.Issuer{
				Email:   m.Email,
				Profile: m.Profile,
				Logger:  m.Logger,
			}}
		}
		m.wireIssuers(m.issuers)
		m.initErr = errors.Join(m.initRules(), m.initManual())
		if m.initErr == nil {
			m.initErr = m.checkWildcards()
		}
		m.startRenewalScan()
	})
	return m.initErr
}

// checkFields refuses a nil entry in Issuers (or a rule's) and a typed nil
// Storage (a nil *filestore.Store): each would panic at the first
// handshake rather than fail here. It also asks each issuer with a
// Check method (acmeca.Issuer) to check its fields, and reports the
// invalid patterns of a policy.Allowlist (its Err method).
func (m *Manager) checkFields() error {
	var errs []error
	if m.Storage != nil && isNil(m.Storage) {
		errs = append(errs, fmt.Errorf("certkeeper: Manager.Storage is a nil %T: set it to a storage, or leave it nil for the default", m.Storage))
	}
	nilIn := func(what string, issuers []issuer.Issuer) {
		for i, iss := range issuers {
			if iss == nil || isNil(iss) {
				errs = append(errs, fmt.Errorf("certkeeper: %s[%d] is nil", what, i))
			}
		}
	}
	nilIn("Manager.Issuers", m.Issuers)
	for i, r := range m.Rules {
		nilIn(fmt.Sprintf("Manager.Rules[%d].Issuers", i), r.Issuers)
	}
	if p, ok := m.Policy.(interface{ Err() error }); ok && p.Err() != nil { // policy.Allowlist's invalid patterns
		errs = append(errs, fmt.Errorf("certkeeper: Manager.Policy: %w", p.Err()))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// An issuer that can tell a mistake in its own fields (acmeca.Issuer:
	// a ChallengeOrder typo) says so here, rather than at every order.
	checkIn := func(what string, issuers []issuer.Issuer) {
		for i, iss := range issuers {
			if c, ok := iss.(interface{ Check() error }); ok {
				if err := c.Check(); err != nil {
					errs = append(errs, fmt.Errorf("certkeeper: %s[%d]: %w", what, i, err))
				}
			}
		}
	}
	checkIn("Manager.Issuers", m.Issuers)
	for i, r := range m.Rules {
		checkIn(fmt.Sprintf("Manager.Rules[%d].Issuers", i), r.Issuers)
	}
	return errors.Join(errs...)
}

// isNil reports whether v, a non-nil interface value, holds a nil
// pointer, map, slice, channel or func.
func isNil(v any) bool {
	switch r := reflect.ValueOf(v); r.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface:
		return r.IsNil()
	}
	return false
}

// Solvers returns the challenge solvers this Manager answers through its
// TLSConfig (tls-alpn-01) and HTTPHandler (http-01), for issuers built by
// the caller. They share their answers through Storage, so any Manager on
// the same Storage can answer the CA's validation request.
func (m *Manager) Solvers() map[string]solver.Solver {
	return map[string]solver.Solver{
		acmeca.TLSALPN01: &sharedSolver{local: &m.alpn, typ: acmeca.TLSALPN01, m: m},
		acmeca.HTTP01:    &sharedSolver{local: &m.http01, typ: acmeca.HTTP01, m: m},
	}
}

func (m *Manager) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.Default()
}

func (m *Manager) issueTimeout() time.Duration {
	if m.IssueTimeout > 0 {
		return m.IssueTimeout
	}
	return 5 * time.Minute
}

// TLSConfig returns a server configuration that serves this Manager's
// certificates and answers tls-alpn-01 challenges, offering HTTP/2 and
// HTTP/1.1. Like HTTPHandler, it starts the Manager (Start: renewals
// need no handshake first), so set the fields before calling it; a
// configuration error is returned by the first handshake.
func (m *Manager) TLSConfig() *tls.Config {
	_ = m.init()
	return &tls.Config{
		GetCertificate: m.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1", tlsalpn01.Protocol},
		MinVersion:     tls.VersionTLS12,
	}
}

// Close stops renewals and other background work, abandons the on-demand
// issuances in flight (the handshakes that wait for them fail), and waits
// for all of them, so that the issue locks they held are released before
// it returns: a node that stops does not make the next one wait for its
// leases. The Manager keeps serving what it holds in memory.
//
// A Manager whose configuration is refused (the error Start returns)
// has started its background work all the same (the renewal of what
// Storage holds): Close stops it too, and returns that error.
func (m *Manager) Close() error {
	err := m.init()
	m.closeOnce.Do(func() {
		m.flightMu.Lock()
		m.cancel()
		m.flightMu.Unlock()
		m.wg.Wait()
		m.staples.Close()
		m.watchers.closeAll()
	})
	return err
}

// certError is what a failed handshake reports: crypto/tls logs it in
// http.Server.ErrorLog with no other context, so it names certkeeper and
// the name.
func certError(name string, err error) error {
	return fmt.Errorf("certkeeper: %s: %w", name, err)
}
