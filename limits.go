package certkeeper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/internal/every"
	"github.com/certkeeper/certkeeper/internal/limit"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"golang.org/x/time/rate"
)

// Default per-client limit on handshakes that start an issuance: a burst
// of 60 (a person setting up dozens of sites, or a benchmark of 50 new
// names, is not held back), then one every 3 minutes, so one client can
// start at most 120 orders in 3 hours: well under Let's Encrypt's 300 per
// account.
const (
	defaultClientBurst = 60
	defaultClientEvery = 3 * time.Minute
)

// limits holds the Manager's abuse and rate-limit state: failures per
// name, order budgets per CA, issuances per client address. The first two
// are kept in storage (state/limits.json), so a restart or a crash loop
// cannot spend a CA's limits again.
type limits struct {
	loadMu   sync.Mutex  // serialises loads
	loaded   atomic.Bool // the stored state was read (or there is none)
	loadLog  every.Gate  // a failed load is logged at most once a minute
	failures limit.FailureBackoff
	dups     limit.FailureBackoff // certificates per exact name set (Let's Encrypt: 5 a week)
	clients  *policy.IPLimiter

	mu     sync.Mutex                  // guards orders
	orders map[string]*limit.CALimiter // issuer ID → its account's order budget

	// saveMu serialises saves, so that an older state is never stored
	// over a newer one. It is held across the storage round trip, and
	// mu is not: an issuance taking an order never waits for a save.
	saveMu sync.Mutex

	merged atomic.Int64 // when the stored state was last merged in (unix ns)

	// wb paces the saves: at most about one a second, however many
	// failures or certificates are recorded.
	wb writeBack

	// sharedSpent holds, by issuer ID, the refusal of the cluster's
	// shared order budget (Cluster.OrderLimit) until its RetryAt: new
	// orders are refused from memory until then, without the storage lock
	// and read each would take. One entry per issuer.
	sharedSpent sync.Map // issuer ID → *limit.RateLimitError

	budgetLog every.Gate // budget refusals are logged at most once a minute

	// unknown paces the storage reads of handshakes for names not in
	// memory (unknownLookupRate): beyond it, the policy decides first for
	// a name this node knows of no stored certificate for (policyFirst).
	unknown *rate.Limiter
}

// unknownLookupRate and unknownLookupBurst bound, per node, how many
// handshakes a second for names not in memory read storage before the
// policy decides, whatever the name. Past the bound, those for names this
// node knows of no stored certificate for ask the policy first, so that a
// flood of names (a scanner's, made up) is refused without a read:
// each cost two reads per CA of the chain, round trips on a Redis or
// PostgreSQL that every node shares (a security trial measured 2,000
// GETs for 500 refused handshakes). Below it, nothing changes: a stored
// certificate is served even if the policy no longer allows its name.
const (
	unknownLookupRate  = 100
	unknownLookupBurst = 200
)

// limitsShareInterval is how often, at most, an on-demand issuance reads
// the failures other nodes sharing the storage recorded: a name that
// failed on one node backs off on all of them within seconds, at the cost
// of one storage read per interval on the issuance path.
const limitsShareInterval = 2 * time.Second

// limitsState is what is stored under storage.StateKey("limits").
type limitsState struct {
	Failures   limit.BackoffState              `json:"failures"`
	Duplicates limit.BackoffState              `json:"duplicates"`
	Orders     map[string]limit.CALimiterState `json:"orders,omitempty"`
}

func (m *Manager) clientLimiter() *policy.IPLimiter {
	if m.ClientLimit != nil {
		return m.ClientLimit
	}
	return m.lim.clients
}

// loadLimits reads the stored limit state once, on the first slow-path
// handshake (or save). A storage that cannot be read leaves it to be read
// at the next: starting from empty limits would let this node's first
// save replace the stored order budgets (trial 24, a Redis outage).
func (m *Manager) loadLimits(ctx context.Context) {
	if m.lim.loaded.Load() {
		return
	}
	m.lim.loadMu.Lock()
	defer m.lim.loadMu.Unlock()
	if m.lim.loaded.Load() {
		return
	}
	data, err := m.store.Load(ctx, storage.StateKey("limits"))
	if err != nil {
		if isNotFound(err) {
			m.lim.loaded.Store(true)
		} else if ctx.Err() == nil && m.lim.loadLog.Allow(time.Minute) {
			m.logger().Warn("loading rate-limit state failed; read again at the next new name (logged at most once a minute)", slog.Any("err", err))
		}
		return
	}
	m.lim.loaded.Store(true)
	var st limitsState
	if err := json.Unmarshal(data, &st); err != nil {
		m.logger().Warn("stored rate-limit state is damaged; starting afresh", slog.Any("err", err))
		return
	}
	m.lim.failures.Restore(st.Failures)
	m.lim.dups.Restore(st.Duplicates)
	for id, s := range st.Orders {
		m.orderLimiter(id).Restore(s)
	}
}

// saveLimits stores the limit state; failures are logged, not returned:
// losing it costs at most a few extra attempts after a restart.
func (m *Manager) saveLimits(ctx context.Context) {
	// Add what other nodes stored since this node last read it, so that
	// this store does not drop their failures (the stored state is one
	// value that every node replaces).
	m.lim.saveMu.Lock()
	defer m.lim.saveMu.Unlock()
	if m.loadLimits(ctx); !m.lim.loaded.Load() {
		return // what storage holds is unknown: storing now could replace it
	}
	m.mergeLimitsFrom(ctx)
	st := limitsState{Failures: m.lim.failures.State(), Duplicates: m.lim.dups.State(), Orders: map[string]limit.CALimiterState{}}
	m.lim.mu.Lock()
	for id, l := range m.lim.orders {
		st.Orders[id] = l.State()
	}
	m.lim.mu.Unlock()
	data, err := json.Marshal(st)
	if err == nil {
		err = m.store.Store(ctx, storage.StateKey("limits"), data)
	}
	if err != nil {
		m.logger().Warn("storing rate-limit state", slog.Any("err", err))
	}
}

// orderLimiter returns the order budget of the CA account behind issuer
// id (Let's Encrypt's limits, spent only for Let's Encrypt: takeOrder).
func (m *Manager) orderLimiter(id string) *limit.CALimiter {
	m.lim.mu.Lock()
	defer m.lim.mu.Unlock()
	if m.lim.orders == nil {
		m.lim.orders = make(map[string]*limit.CALimiter)
	}
	l := m.lim.orders[id]
	if l == nil {
		l = &limit.CALimiter{}
		m.lim.orders[id] = l
	}
	return l
}

// ErrFailedRecently is returned for a handshake that would start an
// issuance for a name whose issuance failed recently: it waits out its
// back-off, so that a broken name cannot spend the CA's rate limits. Its
// message names the next attempt and, when this process knows it, the last
// failure's time and cause. It is not the policy's refusal.
var ErrFailedRecently = errors.New("obtaining a certificate failed recently")

// lastFailure is ", last failure at TIME: ERROR" for the newest failed
// first issuance of name this process knows of (the stored failures it
// last read or wrote), for ErrFailedRecently's message: the handshakes
// held back by the backoff said only that something failed, and the
// cause was in one log line, maybe another node's. Empty if none is known.
func (m *Manager) lastFailure(name string) string {
	m.stats.failMu.Lock()
	defer m.stats.failMu.Unlock()
	var last status.Failure
	for _, key := range []string{status.FailingKey(name, ""), status.FailingKey(name, variantRSA)} {
		if f, ok := m.stats.failing[key]; ok && f.FirstIssue && f.At.After(last.At) {
			last = f
		}
	}
	if last.At.IsZero() {
		return ""
	}
	return ", last failure at " + last.At.UTC().Format(time.RFC3339) + ": " + last.Error
}

// ErrClientLimit is returned for a handshake that would start an issuance
// from a client that has started too many (ClientLimit). It is a limit,
// not the policy's refusal (not policy.ErrDenied): the error also matches
// issuer.ErrRateLimited, and CertificateFor's UnavailableError.RetryAfter
// is when the client's budget has refilled.
var ErrClientLimit = errors.New("too many new names from this client")

// admit checks, before an on-demand issuance, what the policy cannot: the
// name's recent failures, the client's issuance budget and the cap on
// managed names.
func (m *Manager) admit(ctx context.Context, name string, client netip.Addr) error {
	m.loadLimits(ctx)
	if now, last := time.Now().UnixNano(), m.lim.merged.Load(); now-last >= int64(limitsShareInterval) && m.lim.merged.CompareAndSwap(last, now) {
		m.mergeLimitsFrom(ctx)
	}
	if ok, retry := m.lim.failures.Allowed(name, time.Now()); !ok {
		return fmt.Errorf("%w; next attempt after %s%s", ErrFailedRecently, retry.UTC().Format(time.RFC3339), m.lastFailure(name))
	}
	if client.IsValid() && !m.clientLimiter().Allow(client) {
		// Not the policy's refusal: a limit, retried once the client's
		// budget has refilled (RetryAt, for CertificateFor's RetryAfter).
		return fmt.Errorf("%w (%s); %w", ErrClientLimit, client,
			&limit.RateLimitError{Limit: "new names from one client", RetryAt: m.clientLimiter().Next(client), Configured: true})
	}
	if m.MaxNames > 0 {
		keys, err := m.store.List(ctx, storage.CertificatePrefix(""))
		if err != nil {
			return fmt.Errorf("counting managed names: %w", err)
		}
		if len(keys) >= m.MaxNames {
			return fmt.Errorf("%w: %d certificates managed, the most Manager.MaxNames allows", policy.ErrDenied, len(keys))
		}
	}
	return nil
}

// Let's Encrypt's duplicate-certificate limit: 5 certificates for the
// same exact set of names in 7 days (renewals with ARI are exempt).
const (
	duplicateLimit  = 5
	duplicateWindow = 7 * 24 * time.Hour
)

// initDuplicates sizes the duplicate tracker to the CA's limit.
func (m *Manager) initDuplicates() {
	m.lim.dups = limit.FailureBackoff{Limit: duplicateLimit, Window: duplicateWindow, Backoff: time.Nanosecond}
}

// nameSet is the key of a certificate's exact set of names.
func nameSet(names []string) string {
	s := slices.Clone(names)
	slices.Sort(s)
	return strings.Join(s, ",")
}

// checkDuplicate refuses a new (not renewal) order for a name set that
// already got duplicateLimit certificates this week: the CA would refuse
// it, and the attempt would count against the account.
func (m *Manager) checkDuplicate(ctx context.Context, names []string) error {
	m.loadLimits(ctx)
	if ok, retry := m.lim.dups.Allowed(nameSet(names), time.Now()); !ok {
		return fmt.Errorf("%w: %d certificates for exactly %s in 7 days (the CA's duplicate limit); next after %s",
			policy.ErrDenied, duplicateLimit, strings.Join(names, ", "), retry.UTC().Format(time.RFC3339))
	}
	return nil
}

// recordIssued counts a new certificate for its name set: in memory at
// once, in storage in the background (writeBack). It runs after the
// certificate is durably stored and published, and the handshake that
// waits for it need not wait for a storage round trip (on filestore, two
// fsyncs) that only bounds future orders: a crash before the save loses
// one count of a certificate that is itself kept in storage, and so is
// not ordered again after the restart.
func (m *Manager) recordIssued(ctx context.Context, names []string) {
	m.lim.dups.Record(nameSet(names), time.Now())
	m.changed(ctx, &m.lim.wb, m.saveLimits, false)
}

// limitsChanged stores the changed limit state (writeBack): in the caller
// when no save ran in the last second; else, and for the changes that
// follow within the second, in one save in the background (Close waits
// for it). A flood of failing names costs about a save a
// second, each of the whole state (at most MaxNames names), not one per
// failure.
func (m *Manager) limitsChanged(ctx context.Context) {
	m.changed(ctx, &m.lim.wb, m.saveLimits, true)
}

// recordFailure notes and logs a failed on-demand issuance for name: the
// name waits out the failure backoff (an hour for a name the CA rejects)
// and is tried again at a handshake after that.
func (m *Manager) recordFailure(ctx context.Context, name string, err error) {
	now := time.Now()
	if errors.Is(err, issuer.ErrNameRejected) {
		m.lim.failures.RecordRejected(name, now)
	} else {
		m.lim.failures.Record(name, now)
	}
	m.limitsChanged(ctx)
	_, retry := m.lim.failures.Allowed(name, now)
	m.logger().Warn("obtaining a certificate failed; tried again when a handshake asks for it",
		slog.String("name", name), slog.Time("retry_from", retry), slog.Any("err", err))
}

// logBudget logs, at most once a minute, that a new name's order was held
// back by an order budget.
func (m *Manager) logBudget(name string, err error) {
	if m.lim.budgetLog.Allow(time.Minute) {
		m.logger().Warn("no new order: the order budget is spent; the name is ordered when a handshake asks for it after the budget allows (logged at most once a minute)",
			slog.String("name", name), slog.Any("err", err))
	}
}

// takeOrder spends one order of an ACME CA's budget (and of the
// cluster's shared budget, Cluster.OrderLimit) before a new order;
// an exhausted budget skips the issuer. Issuers that are not ACME CAs
// (the local CA) have no budget. The budget is Let's Encrypt's published
// one (limit.CALimiter), for its production directory only and only
// while Cluster.OrderLimit does not state the account's budget itself:
// another CA's limits are its own (an internal CA may have none; a trial
// found 300 orders per node the most any ACME CA got), and a Let's
// Encrypt account's can be raised. Every CA's own rateLimited answer
// pauses its orders until its Retry-After (noteIssueError).
func (m *Manager) takeOrder(ctx context.Context, iss issuer.Issuer) error {
	a, ok := iss.(*acmeca.Issuer)
	if !ok {
		return nil
	}
	l := m.orderLimiter(iss.ID())
	take := l.Paused
	if (a.DirectoryURL == "" || a.DirectoryURL == acmeca.LetsEncrypt) && m.Cluster.OrderLimit <= 0 {
		take = l.Take
	}
	if err := take(); err != nil {
		return err
	}
	return m.takeSharedOrder(ctx, iss)
}

func (m *Manager) noteIssueError(ctx context.Context, iss issuer.Issuer, err error) {
	var ierr *issuer.Error
	if errors.As(err, &ierr) && errors.Is(err, issuer.ErrRateLimited) && !ierr.RetryAfter.IsZero() {
		if ierr.RetryAfter.After(time.Now().Add(limit.MaxPause)) {
			m.logger().Warn("the CA asks to wait longer than a day before the next order; new orders wait a day, then try again",
				slog.String("issuer", iss.ID()), slog.Time("retry_after", ierr.RetryAfter), slog.Any("err", err))
		}
		m.orderLimiter(iss.ID()).Pause(ierr.RetryAfter)
		m.limitsChanged(ctx)
	}
}

// clientAddr is the IP address of a handshake's client, if known.
func clientAddr(c net.Conn) netip.Addr {
	if c == nil {
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func newDefaultClientLimiter() *policy.IPLimiter {
	return &policy.IPLimiter{Rate: rate.Every(defaultClientEvery), Burst: defaultClientBurst}
}
