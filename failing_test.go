package certkeeper_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// refusingCA is a CA that refuses every order at once, as a CA does for
// names it will not sign (the rejected ones) or when its validation
// cannot reach the name (the others): what a flood of handshakes for
// names that pass the policy but are not served here meets. It is not an
// end-to-end test's CA (those run against Pebble); it stands for the CA
// in a measurement of what the Manager itself does per failure.
type refusingCA struct{}

func (refusingCA) ID() string { return "refusing" }

func (refusingCA) Issue(_ context.Context, req issuer.Request) (*issuer.Certificate, error) {
	if len(req.Names[0])%2 == 0 {
		return nil, &issuer.Error{Issuer: "refusing", Names: req.Names, Err: errors.Join(issuer.ErrNameRejected, errors.New(req.Names[0]+" is not served here"))}
	}
	return nil, &issuer.Error{Issuer: "refusing", Names: req.Names, Err: errors.New("connection refused while validating " + req.Names[0])}
}

// TestManyFailingNames: a flood of names that pass the policy and fail
// costs the same per failure at the 100,000th name as at the 10,000th.
// Each failure is remembered (the name backs off, status lists it), but
// the two stored values that hold them — the backoff state, at most
// 10,000 names, and the failures status shows, at most 1,000 first
// issuances — are written at most about once a second, not once per
// failure (before, each failure rewrote both: 15 ms per failure at 3,000
// names and growing, 10^5 not reachable). After Close, storage holds the
// newest failures within those bounds, and a new Manager on it backs the
// newest name off. Without the race detector it runs 100,000 names (about
// 40 s); with it, 4,000.
func TestManyFailingNames(t *testing.T) {
	n := 100_000
	if raceEnabled || testing.Short() {
		n = 4_000
	}
	block := min(10_000, n/4)
	st := filestore.New(fastDir(t))
	newManager := func() *certkeeper.Manager {
		m := &certkeeper.Manager{
			Policy:  policy.Allowlist("*.flood.test"),
			Storage: st,
			Issuers: []issuer.Issuer{refusingCA{}},
			Logger:  slog.New(slog.DiscardHandler),
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	m := newManager()
	name := func(i int) string { return "n" + strconv.Itoa(i) + ".flood.test" }

	// Four clients at a time, a block of names after another.
	deadline := time.Now().Add(4 * time.Minute)
	var blocks []time.Duration
	for from := 0; from < n; from += block {
		start := time.Now()
		var wg sync.WaitGroup
		var failed atomic.Bool
		for w := range 4 {
			wg.Go(func() {
				for i := from + w; i < from+block && !failed.Load(); i += 4 {
					if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name(i)}); err == nil || errors.Is(err, certkeeper.ErrFailedRecently) {
						t.Errorf("handshake %d for a new name: %v, want the CA's refusal", i, err)
						failed.Store(true)
					}
				}
			})
		}
		wg.Wait()
		if failed.Load() {
			t.FailNow()
		}
		blocks = append(blocks, time.Since(start))
		if time.Now().After(deadline) {
			t.Fatalf("%d failing names took more than 4 minutes (blocks of %d: %v)", from+block, block, blocks)
		}
	}
	t.Logf("%d failing names, blocks of %d: %v", n, block, blocks)
	// Each block costs about what the first did (the first fills the
	// backoff state to its 10,000 names; from then on each new name
	// evicts). Before, the cost grew with every name: at 4,000 names the
	// fourth thousand took 6 times the first.
	if last, first := blocks[len(blocks)-1], min(blocks[0], blocks[1]); last > first*5/2+time.Second {
		t.Errorf("the last %d failures took %v, the first %v: the cost per failure grows with the names seen", block, last, first)
	}
	// The newest failure: one name after the flood, alone. (The last name
	// of the last block is not it: four clients on two cores finish
	// their shares of a block hundreds of names apart.)
	newest := name(n)
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: newest}); err == nil || errors.Is(err, certkeeper.ErrFailedRecently) {
		t.Fatalf("handshake for the newest name: %v, want the CA's refusal", err)
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: newest}); !errors.Is(err, certkeeper.ErrFailedRecently) {
		t.Errorf("the newest failing name again: %v, want ErrFailedRecently", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// Storage after Close: the bounds hold, the newest are kept.
	data, err := st.Load(t.Context(), storage.StateKey("limits"))
	if err != nil {
		t.Fatal(err)
	}
	var limits struct {
		Failures struct {
			Failures map[string][]time.Time `json:"failures"`
		} `json:"failures"`
	}
	if err := json.Unmarshal(data, &limits); err != nil {
		t.Fatal(err)
	}
	if got := len(limits.Failures.Failures); got > 10_000 || limits.Failures.Failures[newest] == nil {
		t.Errorf("stored backoff: %d names (want at most 10,000), newest kept: %v", got, limits.Failures.Failures[newest] != nil)
	}
	_, failures, err := status.LoadState(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := failures[status.FailingKey(newest, "")]; len(failures) > 1000 || !ok {
		t.Errorf("stored failures for status: %d (want at most 1,000), newest kept: %v", len(failures), ok)
	}
	m2 := newManager()
	if _, err := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: newest}); !errors.Is(err, certkeeper.ErrFailedRecently) {
		t.Errorf("the newest failing name after a restart: %v, want ErrFailedRecently", err)
	}
}

// stallingCA is the local CA until stall is set; then each Issue waits
// for its context to end, as an order to a CA that hangs.
type stallingCA struct {
	*localca.CA
	stall   atomic.Bool
	stalled chan struct{} // closed when an Issue stalls
	once    sync.Once
}

func (c *stallingCA) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	if !c.stall.Load() {
		return c.CA.Issue(ctx, req)
	}
	c.once.Do(func() { close(c.stalled) })
	<-ctx.Done()
	return nil, &issuer.Error{Issuer: c.ID(), Names: req.Names, Err: fmt.Errorf("finalizing order: %w", ctx.Err())}
}

// TestCloseDuringRenewalNoFailure: a renewal cut short by Close (SIGTERM
// to the proxy) is no failure: nothing is stored for status, whose entry
// for the certificate stays as it was (a trial found it failing, with a
// next attempt, after a restart).
func TestCloseDuringRenewalNoFailure(t *testing.T) {
	st := filestore.New(t.TempDir())
	ca := &stallingCA{CA: &localca.CA{Storage: st, Lifetime: 4 * time.Second}, stalled: make(chan struct{})}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{ca}, Logger: slog.New(slog.DiscardHandler)}
	if err := m.Cert(t.Context(), "closing.test"); err != nil {
		t.Fatal(err)
	}
	ca.stall.Store(true)
	select {
	case <-ca.stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("no renewal within 10 s of a 4-second certificate")
	}
	m.Close()
	certs, err := status.Read(t.Context(), st, time.Now())
	if err != nil || len(certs) != 1 {
		t.Fatalf("status.Read: %v, %v", certs, err)
	}
	if c := certs[0]; c.LastError != "" || c.State == status.Failing {
		t.Errorf("after Close cut a renewal short, status shows %s: %q", c.State, c.LastError)
	}
}

// TestExpiredNotFirstIssue: a handshake for a name whose stored
// certificate has expired (it is not served: the handshake orders a new
// one), made while the CA fails, is not listed as a failing first
// issuance: the certificate's renewal is listed as failing, under its
// key. (A trial: such a handshake left a failing first issuance for a
// name that had a certificate, which outlived the renewal's success,
// kept the Nagios check at WARNING and sent an issuance_failing alert.)
func TestExpiredNotFirstIssue(t *testing.T) {
	st := filestore.New(t.TempDir())
	key := storeDated(t, st, "e.test", time.Now().Add(-90*time.Hour), time.Now().Add(-time.Hour))
	ca := &failIssues{Issuer: &localca.CA{Storage: st}, n: 1000}
	m := &certkeeper.Manager{Policy: policy.Allowlist("e.test"), Storage: st, Issuers: []issuer.Issuer{ca}}
	defer m.Close()
	certkeeper.WaitRenewalScan(m)
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "e.test"}); err == nil {
		t.Fatal("a certificate was served with the CA failing")
	}
	var failures map[string]status.Failure
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if _, failures, err = status.LoadState(t.Context(), st); err != nil {
			t.Fatal(err)
		}
		if _, ok := failures[key]; ok {
			break
		}
	}
	if _, ok := failures[key]; !ok {
		t.Fatalf("no failing renewal stored for %s within 15 s: %v", key, failures)
	}
	time.Sleep(1500 * time.Millisecond) // failures are written at most once a second
	if _, failures, _ = status.LoadState(t.Context(), st); failures[status.FailingKey("e.test", "")].FirstIssue {
		t.Errorf("the handshake for e.test, whose certificate expired, is stored as a failing first issuance: %+v", failures)
	}
}

// TestRenewalEndsFirstIssueFailure: a renewal that succeeds ends a
// failing first issuance stored for the certificate's name (one stored
// before TestExpiredNotFirstIssue's fix, say): status no longer lists the
// name as failing.
func TestRenewalEndsFirstIssueFailure(t *testing.T) {
	st := filestore.New(t.TempDir())
	key := storeDated(t, st, "r.test", time.Now().Add(-90*time.Hour), time.Now().Add(-time.Hour))
	failing := map[string]status.Failure{status.FailingKey("r.test", ""): {Names: []string{"r.test"}, Error: "CA down", At: time.Now().UTC(), FirstIssue: true}}
	data, _ := json.Marshal(failing)
	if err := st.Store(t.Context(), status.FailuresKey, data); err != nil {
		t.Fatal(err)
	}
	m := localManager(t, st, nil)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, failures, err := status.LoadState(t.Context(), st)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := st.Load(t.Context(), key)
		rec, _ := storage.UnmarshalCertificate(key, data)
		if rec != nil && rec.NotAfter.After(time.Now()) && len(failures) == 0 {
			return
		}
	}
	_, failures, _ := status.LoadState(t.Context(), st)
	t.Errorf("r.test renewed at start, or its stored first-issue failure not ended within 15 s: failures %+v", failures)
}

// TestReplacedRecordNotFailing: a record whose renewals failed (expired,
// the CA down), replaced by a first issuance (a handshake's), is not
// listed as failing any more: status went on showing the new certificate
// as failing, with the old error, until its own first renewal.
func TestReplacedRecordNotFailing(t *testing.T) {
	st := filestore.New(t.TempDir())
	key := storeDated(t, st, "re.test", time.Now().Add(-90*time.Hour), time.Now().Add(-time.Hour))
	ca := &failIssues{Issuer: &localca.CA{Storage: st}, n: 1} // the start-up renewal fails
	m := &certkeeper.Manager{Policy: policy.Allowlist("re.test"), Storage: st, Issuers: []issuer.Issuer{ca}}
	defer m.Close()
	failing := func() bool {
		_, failures, err := status.LoadState(t.Context(), st)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := failures[key]
		return ok
	}
	certkeeper.WaitRenewalScan(m)
	for deadline := time.Now().Add(10 * time.Second); !failing() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if !failing() {
		t.Fatal("the start-up renewal's failure was not stored within 10 s")
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "re.test"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); failing() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if failing() {
		t.Error("the record replaced by a handshake's new certificate is still stored as failing to renew")
	}
}

// TestExplainWordsFailures: Manager.Explain words the failure status keeps
// and the IssuerFailed event's error (a command line names its flags for
// the libraries' fields there, as its log does: a DNS trial read
// Provider.Server in the proxy's status), and errors.Is still sees the
// issuer's error.
func TestExplainWordsFailures(t *testing.T) {
	st := filestore.New(t.TempDir())
	events := make(chan certkeeper.Event, 16)
	m := &certkeeper.Manager{
		Policy:  policy.Allowlist("*.flood.test"),
		Storage: st,
		Issuers: []issuer.Issuer{refusingCA{}},
		Logger:  slog.New(slog.DiscardHandler),
		Explain: func(err error) string { return "worded: " + err.Error() },
		OnEvent: func(e certkeeper.Event) {
			select {
			case events <- e:
			default:
			}
		},
	}
	t.Cleanup(func() { m.Close() })
	const name = "a1.flood.test" // odd length: refusingCA's "connection refused"
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); err == nil {
		t.Fatal("handshake succeeded against a CA that refuses every order")
	}
	var failed *certkeeper.Event
	for len(events) > 0 {
		if e := <-events; e.Kind == certkeeper.IssuerFailed {
			failed = &e
		}
	}
	if failed == nil || !strings.HasPrefix(failed.Err.Error(), "worded: ") || !errors.As(failed.Err, new(*issuer.Error)) {
		t.Errorf("IssuerFailed event = %+v, want its error worded by Explain and still an *issuer.Error", failed)
	}
	m.Close() // writes the failures status keeps
	_, failures, err := status.LoadState(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := failures[status.FailingKey(name, "")]
	if !ok || !strings.HasPrefix(f.Error, "worded: ") || !strings.Contains(f.Error, "connection refused") {
		t.Errorf("failure kept for status = %+v (found %t), want the text Explain gave", f, ok)
	}
}
