package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/alert"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// obtain stores a certificate for name from a local CA and returns its
// status.
func obtain(t *testing.T, st storage.Storage, name string) status.Cert {
	t.Helper()
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	if err := m.Cert(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	certs, err := status.Read(t.Context(), st, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		if len(c.Names) > 0 && c.Names[0] == name {
			return c
		}
	}
	t.Fatalf("status lacks %s: %+v", name, certs)
	return status.Cert{}
}

// storeFailure stores the record a renewal of c failing for two hours
// leaves (status.Failure).
func storeFailure(t *testing.T, st storage.Storage, c status.Cert, now time.Time) {
	t.Helper()
	errs := map[string]status.Failure{c.Key: {Names: c.Names, Error: "CA down", At: now.Add(-2 * time.Hour), RetryAt: now.Add(time.Hour), Attempt: 3}}
	data, _ := json.Marshal(errs)
	if err := st.Store(t.Context(), storage.StateKey("renewal-errors"), data); err != nil {
		t.Fatal(err)
	}
}

// TestRepeatAndRestart: a failing renewal alerts once, again only after
// Repeat, not again from a new Alerter on the same storage (a restart),
// and a certificate near expiry alerts as expiring.
func TestRepeatAndRestart(t *testing.T) {
	st := filestore.New(t.TempDir())
	c := obtain(t, st, "a.test")
	now := time.Now()
	storeFailure(t, st, c, now)

	var mu sync.Mutex
	var got []alert.Alert
	newAlerter := func() *alert.Alerter {
		return &alert.Alerter{Storage: st, FailingFor: time.Hour, ExpiringWithin: 24 * time.Hour,
			Exec: func(ctx context.Context, a alert.Alert, payload []byte) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, a)
				return nil
			}}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	a := newAlerter()
	steps := []struct {
		a    *alert.Alerter
		at   time.Duration
		want int
	}{
		{a, 0, 1},                        // failing for 2 h > 1 h
		{a, time.Hour, 1},                // within a day: no repeat
		{newAlerter(), 2 * time.Hour, 1}, // a restart remembers
		{a, 25 * time.Hour, 2},           // a day later: again
	}
	for i, s := range steps {
		if err := s.a.Check(t.Context(), now.Add(s.at)); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != s.want {
			t.Fatalf("step %d (+%s): %d alerts, want %d: %+v", i, s.at, n, s.want, got)
		}
	}
	if got[0].Reason != alert.RenewalFailing || got[0].LastError != "CA down" || got[0].Names[0] != "a.test" {
		t.Errorf("first alert = %+v", got[0])
	}
	// Near expiry: an expiring alert once the last alert is a day old.
	if err := a.Check(t.Context(), c.NotAfter.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 3 || got[2].Reason != alert.Expiring {
		t.Errorf("near expiry: %d alerts, last %+v, want an expiring one", n, got[n-1])
	}
}

// TestWebhookPasswordRedacted: a webhook URL's user information, whatever
// its password holds, never reaches the error of a failed post.
func TestWebhookPasswordRedacted(t *testing.T) {
	st := filestore.New(t.TempDir())
	certs := []status.Cert{obtain(t, st, "a.test")}
	for _, c := range strings.Split("/?#@:%", "") {
		a := &alert.Alerter{Storage: st, ExpiringWithin: 24 * time.Hour,
			Webhook: "http://user:Sup3r" + c + "Secr3t@127.0.0.1:1/hook?token=T0ken"}
		err := a.Check(t.Context(), certs[0].NotAfter.Add(-time.Hour))
		if err == nil {
			t.Fatalf("Check posting to an unreachable webhook = nil error")
		}
		if msg := strings.ToLower(err.Error()); strings.Contains(msg, "sup3r") || strings.Contains(msg, "secr3t") || strings.Contains(msg, "%se") || strings.Contains(msg, "t0ken") {
			t.Errorf("password with %q: Check error %q shows the password or the query", c, err)
		}
	}
}

// TestFirstIssueFailing: a name whose first issuance keeps failing (no
// certificate yet) alerts as failing once FailingFor has passed, never as
// a certificate "expiring" in year 1.
func TestFirstIssueFailing(t *testing.T) {
	st := filestore.New(t.TempDir())
	now := time.Now()
	key := status.FailingKey("new.test", "")
	errs := map[string]status.Failure{key: {Names: []string{"new.test"}, Error: "validating new.test: unauthorized",
		At: now.Add(-10 * time.Minute), RetryAt: now.Add(time.Minute), Attempt: 4, FirstIssue: true}}
	data, _ := json.Marshal(errs)
	if err := st.Store(t.Context(), status.FailuresKey, data); err != nil {
		t.Fatal(err)
	}
	a, got := recording(st)
	if err := a.Check(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	if len(got()) != 0 {
		t.Fatalf("alerted at once: %+v; want an alert only once FailingFor has passed", got())
	}
	if err := a.Check(t.Context(), now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(got()) != 1 || got()[0].Reason != alert.IssuanceFailing || !strings.Contains(got()[0].Message, "obtaining a first certificate for new.test") {
		t.Fatalf("alerts = %+v, want one issuance_failing for new.test's first certificate", got())
	}
	// No certificate: no issuer, no year-1 expiry in the JSON.
	payload, _ := json.Marshal(got()[0])
	if strings.Contains(string(payload), "not_after") || strings.Contains(string(payload), `"issuer"`) {
		t.Errorf("payload %s has not_after or issuer for a name with no certificate", payload)
	}

	// The name gets its certificate (its failing entry goes): resolved,
	// once.
	obtain(t, st, "new.test")
	if err := st.Store(t.Context(), status.FailuresKey, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := a.Check(t.Context(), now.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if len(got()) != 2 || got()[1].Reason != alert.Resolved || got()[1].Resolves != alert.IssuanceFailing ||
		!strings.Contains(got()[1].Message, "a first certificate for new.test was obtained") || got()[1].NotAfter.IsZero() {
		t.Errorf("alerts = %+v, want one resolved alert for new.test's new certificate", got()[1:])
	}
}

// TestResolved: once a failing renewal works again, one resolved alert
// ends the renewal_failing one; a later failure alerts again without
// waiting out Repeat.
func TestResolved(t *testing.T) {
	st := filestore.New(t.TempDir())
	certs := []status.Cert{obtain(t, st, "a.test")}
	now := time.Now()
	fail := func(at time.Time) {
		t.Helper()
		data := []byte("{}")
		if !at.IsZero() {
			data, _ = json.Marshal(map[string]status.Failure{certs[0].Key: {Names: certs[0].Names, Error: "CA down", At: at, RetryAt: at.Add(time.Hour), Attempt: 1}})
		}
		if err := st.Store(t.Context(), status.FailuresKey, data); err != nil {
			t.Fatal(err)
		}
	}
	a, got := recording(st)
	steps := []struct {
		failingSince time.Time // zero: renewals work
		at           time.Duration
		want         []string // reasons of all alerts so far
	}{
		{now.Add(-2 * time.Hour), 0, []string{alert.RenewalFailing}},
		{time.Time{}, time.Minute, []string{alert.RenewalFailing, alert.Resolved}},
		{time.Time{}, 2 * time.Minute, []string{alert.RenewalFailing, alert.Resolved}}, // once
		{now.Add(3 * time.Minute), 4 * time.Minute, []string{alert.RenewalFailing, alert.Resolved}},
		{now.Add(3 * time.Minute), 2 * time.Hour, []string{alert.RenewalFailing, alert.Resolved, alert.RenewalFailing}}, // no Repeat wait
	}
	for i, step := range steps {
		fail(step.failingSince)
		if err := a.Check(t.Context(), now.Add(step.at)); err != nil {
			t.Fatal(err)
		}
		var reasons []string
		for _, al := range got() {
			reasons = append(reasons, al.Reason)
		}
		if strings.Join(reasons, " ") != strings.Join(step.want, " ") {
			t.Fatalf("step %d: alerts %v, want %v", i, reasons, step.want)
		}
	}
	if r := got()[1]; r.Resolves != alert.RenewalFailing || !strings.Contains(r.Message, "renewing the certificate for a.test works again") {
		t.Errorf("resolved alert = %+v", r)
	}
}

// TestDocumentedAlerts: the alert bodies docs/operations.md shows decode
// as an Alert, field for field, with a reason the package sends.
func TestDocumentedAlerts(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{alert.RenewalFailing: true, alert.Expiring: true, alert.IssuanceFailing: true, alert.Damaged: true, alert.Resolved: true}
	n := 0
	for _, block := range strings.Split(string(doc), "```json\n")[1:] {
		body, _, _ := strings.Cut(block, "```")
		if !strings.HasPrefix(body, `{"reason"`) {
			continue
		}
		n++
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		var al alert.Alert
		if err := dec.Decode(&al); err != nil {
			t.Errorf("documented alert does not decode as an Alert: %v\n%s", err, body)
		}
		if !reasons[al.Reason] || (al.Reason == alert.Resolved) != (al.Resolves != "") {
			t.Errorf("documented alert has reason %q, resolves %q", al.Reason, al.Resolves)
		}
	}
	if n < 2 {
		t.Errorf("found %d alert examples in docs/operations.md, want the failing and the resolved one", n)
	}
}

// recording returns an Alerter on st (alerts after an hour of failure or
// within an hour of expiry) and the alerts it has sent so far.
func recording(st storage.Storage) (*alert.Alerter, func() []alert.Alert) {
	var mu sync.Mutex
	var got []alert.Alert
	a := &alert.Alerter{Storage: st, FailingFor: time.Hour, ExpiringWithin: time.Hour, Exec: func(ctx context.Context, al alert.Alert, payload []byte) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, al)
		return nil
	}}
	return a, func() []alert.Alert {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestShortLivedExpiring: with the default ExpiringWithin (7 days), a
// certificate that lives 7 days (the local CA's, or a CA's short-lived
// profile) does not alert as expiring when it is issued, only once less
// than a sixth of its lifetime is left (trial 26).
func TestShortLivedExpiring(t *testing.T) {
	st := filestore.New(t.TempDir())
	c := obtain(t, st, "short.test")
	if life := c.NotAfter.Sub(c.NotBefore); life > 8*24*time.Hour || life < 6*24*time.Hour {
		t.Fatalf("local CA lifetime %v (NotBefore %v), want about 7 days", life, c.NotBefore)
	}
	a, got := recording(st)
	a.ExpiringWithin = 0 // the default, 7 days
	now := time.Now()
	if err := a.Check(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	if n := len(got()); n != 0 {
		t.Fatalf("a fresh 7-day certificate alerted: %+v", got())
	}
	if err := a.Check(t.Context(), c.NotAfter.Add(-20*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if al := got(); len(al) != 1 || al[0].Reason != alert.Expiring {
		t.Fatalf("20 h before expiry: alerts %+v, want one %s", al, alert.Expiring)
	}
}

// TestCertFileFailing: a certificate served from files (CertFiles) whose
// files have failed to read for a while alerts as renewal_failing saying
// so, not that renewing it failed (nothing renews it).
func TestCertFileFailing(t *testing.T) {
	st := filestore.New(t.TempDir())
	a, got := recording(st)
	now := time.Now()
	a.CertFiles = func(time.Time) []status.Cert {
		return []status.Cert{{Names: []string{"bought.test"}, Issuer: "file", Key: "file:/etc/ssl/bought.pem", State: status.Fine,
			NotBefore: now.Add(-30 * 24 * time.Hour), NotAfter: now.Add(60 * 24 * time.Hour),
			LastError: "open /etc/ssl/bought.pem: permission denied", LastErrorAt: now.Add(-48 * time.Hour)}}
	}
	if err := a.Check(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	al := got()
	if len(al) != 1 || al[0].Reason != alert.RenewalFailing || !strings.HasPrefix(al[0].Message, "reading the certificate files for bought.test has failed since") {
		t.Errorf("alerts %+v, want one renewal_failing saying the files failed to read", al)
	}
}

// TestCheckWebhook: http and https URLs with a host pass, and so does
// none; anything else fails without quoting the URL, whose path may be
// the webhook's secret.
func TestCheckWebhook(t *testing.T) {
	for _, ok := range []string{"", "https://hooks.a.example/x", "http://127.0.0.1:9000/alert"} {
		if err := alert.CheckWebhook(ok); err != nil {
			t.Errorf("alert.CheckWebhook(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"ftp://hooks.a.example/SECRET", "hooks.a.example/SECRET", "https:///SECRET", "http://[::1/SECRET"} {
		err := alert.CheckWebhook(bad)
		if !errors.Is(err, alert.ErrWebhookURL) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("alert.CheckWebhook(%q) = %v, want alert.ErrWebhookURL, the URL unquoted", bad, err)
		}
	}
}

// TestOneSinkFailing: with a webhook and a command, a webhook that fails
// does not make the command run again at every check: an alert one of
// them delivered counts as sent (the failure is returned, to be logged),
// and the webhook alone gets it again at each check until it takes it
// (a trial's pager, behind the webhook, lost every alert the command
// delivered during the webhook's outage); with every sink failing it is
// tried again at the next check.
func TestOneSinkFailing(t *testing.T) {
	st := filestore.New(t.TempDir())
	c := obtain(t, st, "a.test")
	now := time.Now()
	storeFailure(t, st, c, now)
	var down atomic.Bool
	down.Store(true)
	var hooked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		hooked.Add(1)
	}))
	defer srv.Close()
	ran, execFails := 0, false
	a := &alert.Alerter{Storage: st, FailingFor: time.Hour, Webhook: srv.URL,
		Exec: func(ctx context.Context, al alert.Alert, payload []byte) error {
			ran++
			if execFails {
				return errors.New("command failed")
			}
			return nil
		}}
	for i := range 3 {
		if err := a.Check(t.Context(), now.Add(time.Duration(i)*time.Minute)); err == nil || !strings.Contains(err.Error(), "alert webhook") {
			t.Errorf("check %d with the webhook down: %v; want its failure (tried again)", i, err)
		}
	}
	down.Store(false)
	for i := 3; i < 5; i++ {
		if err := a.Check(t.Context(), now.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Errorf("check %d with the webhook back: %v", i, err)
		}
	}
	if ran != 1 || hooked.Load() != 1 {
		t.Errorf("in 5 checks, the webhook down for 3: the command ran %d times, the webhook took %d alerts; want 1 and 1", ran, hooked.Load())
	}
	// Both failing: the next check tries again.
	b := filestore.New(t.TempDir())
	c = obtain(t, b, "b.test")
	storeFailure(t, b, c, now)
	down.Store(true)
	a.Storage, ran, execFails = b, 0, true
	for i := range 2 {
		_ = a.Check(t.Context(), now.Add(time.Duration(i)*time.Minute))
	}
	if ran != 2 {
		t.Errorf("with every sink failing the command ran %d times in 2 checks, want 2 (tried again)", ran)
	}
}

// slowList is a storage whose List takes a while, as listing 100,000
// records does, and that counts the Lists.
type slowList struct {
	storage.Storage
	lists atomic.Int32
}

func (s *slowList) List(ctx context.Context, prefix string) ([]string, error) {
	if prefix == storage.CertificatePrefix("") {
		s.lists.Add(1)
		time.Sleep(100 * time.Millisecond)
	}
	return s.Storage.List(ctx, prefix)
}

// TestRunRests: after a check that took long, Run rests thirty times its
// length before the next, failed renewals (pokes) or not: with 100,000
// certificates, checking every minute cost a trial's idle proxy a
// quarter of a core. A quick check is followed at once by the next.
func TestRunRests(t *testing.T) {
	st := &slowList{Storage: filestore.New(t.TempDir())}
	obtain(t, st, "a.test")
	st.lists.Store(0)
	a, _ := recording(st)
	a.Every = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	go func() { // failed renewals, as fast as they come
		for ctx.Err() == nil {
			a.Observe(certkeeper.Event{Kind: certkeeper.RenewalFailed})
			time.Sleep(time.Millisecond)
		}
	}()
	a.Run(ctx)
	if n := st.lists.Load(); n != 1 {
		t.Errorf("%d checks in 2 s, each taking 100 ms: want 1, then a rest of 3 s", n)
	}
}

// TestWalkDatesDamage: the alerts read the records' fields (WalkDates),
// which give the same names, dates, failure and state as Walk for a
// sound record and call a record whose fields do not decode damaged; a
// record whose certificate alone is damaged keeps its dates there (it
// alerts as it nears expiry), where Walk, checking it as a Manager does,
// calls it damaged.
func TestWalkDatesDamage(t *testing.T) {
	st := filestore.New(t.TempDir())
	good := obtain(t, st, "good.test")
	storeFailure(t, st, good, time.Now())
	pem := obtain(t, st, "pem.test")
	data, _ := st.Load(t.Context(), pem.Key)
	var rec map[string]any
	json.Unmarshal(data, &rec)
	rec["chain_pem"] = "LS0tLS1CRUdJTg==" // "-----BEGIN", cut
	data, _ = json.Marshal(rec)
	st.Store(t.Context(), pem.Key, data)
	badKey, _ := storage.CertificateKey("local", "bad.test")
	st.Store(t.Context(), badKey, []byte(`{"names": [`))
	read := func(walk func(context.Context, storage.Storage, time.Time, func(status.Cert) error) error) map[string]status.Cert {
		out := map[string]status.Cert{}
		now := time.Now().Truncate(time.Second)
		if err := walk(t.Context(), st, now, func(c status.Cert) error { out[c.Key] = c; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	full, dates := read(status.Walk), read(status.WalkDates)
	g, d := full[good.Key], dates[good.Key]
	if !slices.Equal(g.Names, d.Names) || !g.NotAfter.Equal(d.NotAfter) || !g.NotBefore.Equal(d.NotBefore) || g.State != d.State ||
		g.LastError != d.LastError || g.Issuer != d.Issuer || d.State != status.Failing {
		t.Errorf("a sound, failing record: Walk %+v, WalkDates %+v", g, d)
	}
	if full[pem.Key].State != status.Damaged || dates[pem.Key].State != status.Fine || dates[pem.Key].NotAfter.IsZero() {
		t.Errorf("a record with a damaged certificate: Walk %s, WalkDates %s (not_after %v): want damaged, fine with its dates",
			full[pem.Key].State, dates[pem.Key].State, dates[pem.Key].NotAfter)
	}
	if full[badKey].State != status.Damaged || dates[badKey].State != status.Damaged {
		t.Errorf("a record that does not decode: Walk %s, WalkDates %s: want damaged", full[badKey].State, dates[badKey].State)
	}
}

// TestExpiringEscalates: within Repeat of a renewal-failing alert, a
// certificate that comes near its expiry still alerts as expiring, once:
// a receiver that pages on expiring alone must not miss it (a trial: three
// certificates expired with a renewal-failing alert only).
func TestExpiringEscalates(t *testing.T) {
	st := filestore.New(t.TempDir())
	c := obtain(t, st, "e.test")
	now := time.Now()
	storeFailure(t, st, c, now)
	var got []alert.Alert
	a := &alert.Alerter{Storage: st, FailingFor: time.Hour, ExpiringWithin: 24 * time.Hour, Repeat: 365 * 24 * time.Hour,
		Exec: func(ctx context.Context, al alert.Alert, payload []byte) error {
			got = append(got, al)
			return nil
		}}
	for _, at := range []time.Time{now, c.NotAfter.Add(-2 * time.Hour), c.NotAfter.Add(-time.Hour)} {
		if err := a.Check(t.Context(), at); err != nil {
			t.Fatal(err)
		}
	}
	var reasons []string
	for _, al := range got {
		reasons = append(reasons, al.Reason)
	}
	if want := []string{alert.RenewalFailing, alert.Expiring}; !slices.Equal(reasons, want) {
		t.Errorf("alerts %v, want %v", reasons, want)
	}
	// Renewed: both alerts end, each with a resolved alert of its own (a
	// trial's receiver, which opens an incident per reason, kept the
	// renewal_failing one open for good).
	if err := st.Store(t.Context(), storage.StateKey("renewal-errors"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := a.Check(t.Context(), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var resolves []string
	for _, al := range got {
		if al.Reason == alert.Resolved {
			resolves = append(resolves, al.Resolves)
		}
	}
	slices.Sort(resolves)
	if want := []string{alert.Expiring, alert.RenewalFailing}; len(got) != 2 || !slices.Equal(resolves, want) {
		t.Errorf("after the renewal: %d alerts resolving %v, want 2 resolving %v", len(got), resolves, want)
	}
}

// TestDamagedAlerts: a stored record that cannot be read alerts as
// damaged (it is not renewed), whether its fields do not decode or its
// certificate alone does not parse, which a Manager finds at its renewal
// check and stores as a failing renewal (read by its fields, such a record
// looked sound and alerted as expiring, state renewing, in a trial); once
// it reads again a resolved alert says so.
func TestDamagedAlerts(t *testing.T) {
	st := filestore.New(t.TempDir())
	pem := obtain(t, st, "pem.test")
	sound, _ := st.Load(t.Context(), pem.Key)
	var rec map[string]any
	if err := json.Unmarshal(sound, &rec); err != nil {
		t.Fatal(err)
	}
	rec["chain_pem"] = "LS0tLS1CRUdJTg==" // "-----BEGIN", cut
	data, _ := json.Marshal(rec)
	if err := st.Store(t.Context(), pem.Key, data); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	storeFailure(t, st, pem, now) // what the Manager's renewal check stores
	badKey, _ := storage.CertificateKey("local", "bad.test")
	if err := st.Store(t.Context(), badKey, []byte(`{"names": [`)); err != nil {
		t.Fatal(err)
	}
	a, got := recording(st)
	if err := a.Check(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	byKey := map[string]alert.Alert{}
	for _, al := range got() {
		byKey[al.Key] = al
	}
	if al := byKey[pem.Key]; len(got()) != 2 || al.Reason != alert.Damaged || al.State != status.Damaged || !slices.Equal(al.Names, []string{"pem.test"}) ||
		byKey[badKey].Reason != alert.Damaged {
		t.Fatalf("alerts %+v; want one damaged alert for each record, pem.test's naming it", got())
	}
	// Restored, and renewed since (no failure left).
	if err := st.Store(t.Context(), pem.Key, sound); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(t.Context(), storage.StateKey("renewal-errors")); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(t.Context(), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	all := got()
	if last := all[len(all)-1]; len(all) != 3 || last.Reason != alert.Resolved || last.Resolves != alert.Damaged || last.Key != pem.Key {
		t.Errorf("after the record was restored: alerts %+v; want a resolved one for pem.test's damaged alert", all)
	}
}

// TestPlannedRenewalNotExpiring: a certificate whose renewal is planned
// late in its life, as a CA's window may place it (Pebble's for a short
// certificate: up to a tenth before its expiry), does not alert as
// expiring while that renewal is ahead and nothing failed; once its time
// has passed unrenewed it does, and the alert of one already expired says
// so. (A trial: healthy certificates sent expiring, then resolved, at
// every renewal; and "expires ... (in -2m47s)".)
func TestPlannedRenewalNotExpiring(t *testing.T) {
	st := filestore.New(t.TempDir())
	c := obtain(t, st, "late.test")
	life := c.NotAfter.Sub(c.NotBefore)
	at := func(f float64) time.Time { return c.NotBefore.Add(time.Duration(f * float64(life))) }
	data, _ := st.Load(t.Context(), c.Key)
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	// Pebble's window for a short certificate: its whole life, which
	// renewal clamps to end at nine tenths. Where in it the renewal falls
	// depends on the serial, which the alerts do not read: until its end,
	// it may be ahead (it was a random draw, and alerted nine times in ten).
	rec["renewal_window"] = map[string]any{"start": c.NotBefore, "end": c.NotAfter, "next_check": at(0.5)}
	data, _ = json.Marshal(rec)
	if err := st.Store(t.Context(), c.Key, data); err != nil {
		t.Fatal(err)
	}
	a, got := recording(st)
	a.ExpiringWithin = 0 // the default, 7 days: a sixth of a 7-day life
	for _, step := range []struct {
		at   time.Time
		want int
	}{{at(0.84), 0}, {at(0.86), 0}, {at(0.87), 0}, {at(0.88), 0}, {at(0.89), 0}, {at(0.905), 1}} { // a sixth left, renewal ahead; the window passed
		if err := a.Check(t.Context(), step.at); err != nil {
			t.Fatal(err)
		}
		if n := len(got()); n != step.want {
			t.Fatalf("at %.3f of its life: alerts %+v, want %d", step.at.Sub(c.NotBefore).Seconds()/life.Seconds(), got(), step.want)
		}
	}
	st2 := filestore.New(t.TempDir())
	gone := obtain(t, st2, "gone.test")
	b, gotB := recording(st2)
	if err := b.Check(t.Context(), gone.NotAfter.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if al := gotB(); len(al) != 1 || !strings.Contains(al[0].Message, "expired at") || !strings.Contains(al[0].Message, "3m0s ago") {
		t.Errorf("after the expiry: alerts %+v, want one saying it expired 3m0s ago", al)
	}
}

// fullStorage is a storage whose writes fail while full is set, as a
// full disk's do.
type fullStorage struct {
	storage.Storage
	full atomic.Bool
}

func (s *fullStorage) Store(ctx context.Context, key string, value []byte) error {
	if s.full.Load() {
		return errors.New("no space left on device")
	}
	return s.Storage.Store(ctx, key, value)
}

// TestStateUnstored: while the alert state cannot be stored (a full
// disk), an alert goes out once, not at every check (an ops trial's
// webhook got the same alert every 10 s until the disk was freed); the
// check says the state is kept in memory meanwhile.
func TestStateUnstored(t *testing.T) {
	base := filestore.New(t.TempDir())
	c := obtain(t, base, "full.test")
	now := time.Now()
	storeFailure(t, base, c, now)
	st := &fullStorage{Storage: base}
	st.full.Store(true)
	var got []alert.Alert
	a := &alert.Alerter{Storage: st, FailingFor: time.Hour, ExpiringWithin: time.Hour,
		Exec: func(ctx context.Context, al alert.Alert, payload []byte) error {
			got = append(got, al)
			return nil
		}}
	for i := range 3 {
		err := a.Check(t.Context(), now.Add(time.Duration(i)*time.Minute))
		if err == nil || !strings.Contains(err.Error(), "kept in memory meanwhile") {
			t.Errorf("check %d on a full storage = %v, want an error saying the state is kept in memory", i, err)
		}
	}
	st.full.Store(false)
	if err := a.Check(t.Context(), now.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Reason != alert.RenewalFailing {
		t.Errorf("alerts over 4 checks, 3 of them unable to store their state: %+v, want one renewal_failing", got)
	}
}
