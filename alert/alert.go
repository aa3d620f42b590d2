// Package alert warns operators without Prometheus: when a certificate's
// renewal has failed for a while, when it is close to expiry, or when a
// name's first certificate keeps failing, it POSTs a JSON alert to a
// webhook and/or runs a command, at most once per certificate per Repeat
// (a day by default), and once more when the cause is gone (Resolved), so
// that a receiver that pages can also clear the page. What was sent is
// kept in storage, so a restart does not send it again.
//
// Let's Encrypt no longer sends expiry emails; this is what replaces them.
// It reads the same status as the status page, from the records' fields
// (status.WalkDates: names, dates, failures; not the check of each
// certificate and key, which alerts do not need), so an alert always
// matches what "certkeeper status" shows; it streams them, holding one at
// a time, and rests after a long check (Run), so that 100,000 certificates
// cost a few percent of a core.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/redact"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
)

// The reasons for an alert.
const (
	RenewalFailing  = "renewal_failing"  // a certificate's renewals have failed for at least FailingFor
	Expiring        = "expiring"         // the certificate expires within ExpiringWithin
	IssuanceFailing = "issuance_failing" // a name with no certificate yet: its first issuance has failed for at least FailingFor
	Damaged         = "damaged"          // the stored record cannot be read (Alert.LastError says why): its certificate is not renewed
	Resolved        = "resolved"         // what an earlier alert (Alert.Resolves) said is over: the certificate is fine
)

// Defaults of the Alerter's durations.
const (
	DefaultFailingFor     = 24 * time.Hour
	DefaultExpiringWithin = 7 * 24 * time.Hour
	DefaultRepeat         = 24 * time.Hour
	DefaultEvery          = time.Minute
)

// stateKey is where sent alerts and failure starts are remembered.
var stateKey = storage.StateKey("alerts")

// Alert is what the webhook receives as its JSON body and the command as
// $CERTKEEPER_ALERT_JSON.
type Alert struct {
	Reason  string   `json:"reason"` // RenewalFailing, Expiring, IssuanceFailing, Damaged or Resolved
	Message string   `json:"message"`
	Names   []string `json:"names"`
	// Issuer and NotAfter are those of the certificate; both are left
	// out (IssuanceFailing) when there is none yet.
	Issuer   string    `json:"issuer,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	// Resolves is, for Resolved, the reason of the alert it ends.
	Resolves     string    `json:"resolves,omitempty"`
	State        string    `json:"state"`
	LastError    string    `json:"last_error,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	Key          string    `json:"key"`
	Time         time.Time `json:"time"`
}

// ErrWebhookURL is CheckWebhook's error (wrapped).
var ErrWebhookURL = errors.New("not an http or https URL")

// CheckWebhook returns nil for "" (no webhook) and for an absolute http or
// https URL with a host, and an error wrapping ErrWebhookURL otherwise:
// a webhook that cannot be posted to would otherwise fail only at the
// first alert, maybe weeks later. The error does not quote the URL,
// whose path often is the secret (Slack's, Teams').
func CheckWebhook(webhook string) error {
	if webhook == "" {
		return nil
	}
	const example = "give one such as https://hooks.a.example/certkeeper"
	u, err := url.Parse(webhook)
	switch {
	case err != nil:
		return fmt.Errorf("%w: it does not parse: %s", ErrWebhookURL, example)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w (scheme %q): %s", ErrWebhookURL, u.Scheme, example)
	case u.Host == "":
		return fmt.Errorf("%w: it names no host: %s", ErrWebhookURL, example)
	}
	return nil
}

// Alerter checks the certificates in Storage and sends alerts. Its zero
// durations take the defaults; set the fields before Run.
type Alerter struct {
	// Storage holds the certificates and the alert state.
	Storage storage.Storage
	// CertFiles, if set, lists the certificates served from files rather
	// than storage (give the serving Manager's StatusOfCertFiles): they
	// are checked beside the stored ones, so a certificate file near its
	// expiry alerts too.
	CertFiles func(now time.Time) []status.Cert
	// Webhook, if set, receives each Alert as a JSON POST; any 2xx answer
	// counts as delivered.
	Webhook string
	// Exec, if set, is called with each Alert and its JSON encoding (the
	// certkeeper command runs --alert-exec with it: see Command).
	Exec func(ctx context.Context, a Alert, payload []byte) error
	// FailingFor is how long renewals must have failed before an alert.
	FailingFor time.Duration
	// ExpiringWithin alerts for a certificate this close to expiry; for a
	// short-lived certificate, at most a sixth of its lifetime (halfway
	// through the last third, when renewal starts), so that a certificate
	// that lives a week or less does not alert from the day it is issued.
	ExpiringWithin time.Duration
	// Repeat is the least time between two alerts for one certificate.
	Repeat time.Duration
	// Every is how often the certificates are checked (a failed renewal
	// reported through Observe brings a check forward).
	Every time.Duration
	// HTTPClient posts to Webhook. Nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives the alerts sent and delivery failures. Nil means
	// slog.Default().
	Logger *slog.Logger

	mu    sync.Mutex // serialises Check
	pokes chan struct{}
	// unstored is the state the last Check could not store (storage
	// full or failing): the next Check starts from it rather than from
	// the older state in storage, so an alert goes out once, not at
	// every check until the storage is fixed (an ops trial's webhook
	// got the same alert every 10 s). Guarded by mu.
	unstored map[string]certState
	once     sync.Once
}

// certState is what is remembered per certificate (by storage key).
type certState struct {
	FailingSince time.Time `json:"failing_since,omitzero"`
	LastAlert    time.Time `json:"last_alert,omitzero"`
	LastReason   string    `json:"last_reason,omitempty"`
	// Earlier is the reason of an alert still open that LastReason
	// escalated from (renewal_failing, then expiring): the resolution
	// ends both, each with its own Resolved alert.
	Earlier string `json:"earlier,omitempty"`
	// Missed is the sink (webhookSink, commandSink) that failed to
	// deliver the last alert while the other delivered it: it is tried
	// again at the next check, alone, while the alert holds.
	Missed string `json:"missed,omitempty"`
}

// The sinks an alert goes to, as certState.Missed names them.
const (
	webhookSink = "webhook"
	commandSink = "command"
)

func (a *Alerter) init() {
	a.once.Do(func() { a.pokes = make(chan struct{}, 1) })
}

// Observe is a Manager.OnEvent function: a failed renewal brings the next
// check forward.
func (a *Alerter) Observe(e certkeeper.Event) {
	if e.Kind != certkeeper.RenewalFailed {
		return
	}
	a.init()
	select {
	case a.pokes <- struct{}{}:
	default:
	}
}

// Run checks every Every, and after each failed renewal, until ctx is
// done. A check that takes long (it reads every certificate record:
// about 5 s for 100,000 from a directory) is followed by a rest of
// restFactor times its length before the next, failed renewals or not,
// so that checking never takes more than a small share of the process's
// time, however many certificates there are.
func (a *Alerter) Run(ctx context.Context) {
	a.init()
	t := time.NewTicker(or(a.Every, DefaultEvery))
	defer t.Stop()
	for {
		start := time.Now()
		if err := a.Check(ctx, start); err != nil && ctx.Err() == nil {
			a.logger().Warn("checking certificates for alerts", slog.Any("err", err))
		}
		rest := time.NewTimer(restFactor * time.Since(start))
		select {
		case <-ctx.Done():
			rest.Stop()
			return
		case <-rest.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.pokes:
		}
	}
}

// restFactor is how many times a check's length Run rests after it.
const restFactor = 30

// Check looks at every certificate once and sends the alerts that are due.
// An alert that cannot be delivered is tried again at the next check.
func (a *Alerter) Check(ctx context.Context, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := &checkRun{a: a, ctx: ctx, now: now, state: map[string]certState{}, next: map[string]certState{},
		wanted: map[string]bool{}, byName: map[string]status.Cert{}}
	if a.unstored != nil {
		r.state = a.unstored
	} else if data, err := a.Storage.Load(ctx, stateKey); err == nil {
		if err := json.Unmarshal(data, &r.state); err != nil {
			a.logger().Warn("stored alert state is damaged; starting afresh", slog.Any("err", err))
			r.state = map[string]certState{}
		}
	}
	for key, s := range r.state {
		if name, ok := status.FailingName(key); ok && (s.LastReason == IssuanceFailing || s.LastReason == RenewalFailing) {
			r.wanted[name] = true
		}
	}
	// Streamed, one record at a time, and by the records' fields alone:
	// with 100,000 certificates the full check (status.Walk) cost a
	// quarter of a core every minute, and Read held them all.
	if err := status.WalkDates(ctx, a.Storage, now, r.check); err != nil {
		return err
	}
	if a.CertFiles != nil {
		for _, c := range a.CertFiles(now) {
			r.check(c)
		}
	}
	r.resolveFirstIssues()
	data, err := json.Marshal(r.next)
	if err == nil {
		err = a.Storage.Store(ctx, stateKey, data)
	}
	a.unstored = nil
	if err != nil {
		a.unstored = r.next
		r.errs = append(r.errs, fmt.Errorf("storing alert state (kept in memory meanwhile): %w", err))
	}
	return errors.Join(r.errs...)
}

// checkRun is one Check: the alert state read (state) and to store
// (next), the errors met.
type checkRun struct {
	a      *Alerter
	ctx    context.Context
	now    time.Time
	state  map[string]certState
	next   map[string]certState
	errs   []error
	wanted map[string]bool        // names whose first issuance alerted: their certificate resolves it
	byName map[string]status.Cert // those names' certificates, by primary name
}

// send sends al to every sink, or to the one only names, and returns s
// as it is then.
func (r *checkRun) send(s certState, al Alert, only string) certState {
	delivered, missed, err := r.a.send(r.ctx, al, only)
	if err != nil {
		r.errs = append(r.errs, err)
	}
	if delivered && only == "" {
		switch {
		case al.Reason == Resolved:
			s.Earlier = ""
		case s.LastReason != "" && s.LastReason != Resolved && s.LastReason != al.Reason:
			s.Earlier = s.LastReason // still open: a receiver keeps an incident per reason
		}
		s.LastAlert, s.LastReason = r.now, al.Reason
	}
	if delivered {
		s.Missed = missed
	}
	return s
}

// check sends what is due about c, and keeps its state.
func (r *checkRun) check(c status.Cert) error {
	if len(c.Names) > 0 && !c.NotAfter.IsZero() && r.wanted[c.Names[0]] {
		r.byName[c.Names[0]] = c
	}
	s, now := r.state[c.Key], r.now
	if c.LastError == "" {
		s.FailingSince = time.Time{}
	} else if s.FailingSince.IsZero() {
		s.FailingSince = c.LastErrorAt
		if s.FailingSince.IsZero() || s.FailingSince.After(now) {
			s.FailingSince = now
		}
	}
	al, due := r.a.due(c, s, now)
	if due || s.LastReason == Damaged {
		// Read by its fields alone: before an alert goes out, or a
		// damaged one is called resolved, the record is checked whole,
		// as status does (a trial: a record whose chain no longer parsed
		// alerted as expiring, state renewing).
		if err := r.a.checkRecord(r.ctx, c); err != nil {
			c.State, c.LastError = status.Damaged, err.Error()
			al, due = r.a.due(c, s, now)
		}
	}
	if due {
		s = r.send(s, al, "")
	} else if s.Missed != "" && al.Reason == s.LastReason {
		// One sink delivered it, the other failed: that one alone gets it
		// again (a trial's pager, behind the webhook, lost every alert
		// the command delivered during its outage).
		s = r.send(s, al, s.Missed)
	} else if al, ok := r.a.resolved(c, s, now); ok {
		if s.Earlier != "" && s.Earlier != s.LastReason {
			// The alert escalated from ends too (a trial's receiver,
			// which opens an incident per reason, kept it open for good).
			early := al
			early.Resolves = s.Earlier
			r.send(s, early, "")
		}
		s = r.send(s, al, "")
	}
	if s != (certState{}) && s.LastReason != Resolved { // once resolved, nothing is left to remember
		r.next[c.Key] = s
	}
	return nil
}

// resolveFirstIssues resolves the alerts of names whose first issuance
// alerted and that have a certificate now: their failing/NAME entry is
// gone, and the certificate is under its own key.
func (r *checkRun) resolveFirstIssues() {
	for key, s := range r.state {
		if _, ok := r.next[key]; ok || s.LastReason != IssuanceFailing && s.LastReason != RenewalFailing {
			continue
		}
		name, ok := status.FailingName(key)
		if !ok {
			continue
		}
		if c, ok := r.byName[name]; ok && c.LastError == "" {
			al := r.a.alertFor(c, s, r.now)
			al.Reason, al.Resolves = Resolved, s.LastReason
			al.Message = fmt.Sprintf("a first certificate for %s was obtained: it expires at %s", strings.Join(c.Names, ", "),
				c.NotAfter.UTC().Format(time.RFC3339))
			delivered, _, err := r.a.send(r.ctx, al, "")
			if err != nil {
				r.errs = append(r.errs, err)
			}
			if !delivered {
				r.next[key] = s // tried again at the next check
			}
		}
	}
}

// alertFor returns the alert about c, with no reason yet.
func (a *Alerter) alertFor(c status.Cert, s certState, now time.Time) Alert {
	return Alert{Names: c.Names, Issuer: c.Issuer, NotAfter: c.NotAfter, State: c.State, LastError: c.LastError,
		FailingSince: s.FailingSince, Key: c.Key, Time: now.UTC()}
}

// resolved returns the Resolved alert for c when an alert was sent for it
// and its cause is over: it has a certificate, no failure, and is not
// within ExpiringWithin of expiry.
func (a *Alerter) resolved(c status.Cert, s certState, now time.Time) (Alert, bool) {
	if s.LastReason == "" || s.LastReason == Resolved || c.State == status.Damaged || c.NotAfter.IsZero() ||
		c.LastError != "" || a.expiring(c, now) {
		return Alert{}, false
	}
	al := a.alertFor(c, s, now)
	al.Reason, al.Resolves = Resolved, s.LastReason
	name, until := strings.Join(c.Names, ", "), c.NotAfter.UTC().Format(time.RFC3339)
	switch s.LastReason {
	case Expiring:
		al.Message = fmt.Sprintf("the certificate for %s was renewed: it expires at %s", name, until)
	case Damaged:
		al.Message = fmt.Sprintf("the stored record of %s reads again (replaced or restored): it expires at %s", name, until)
	default:
		al.Message = fmt.Sprintf("renewing the certificate for %s works again: it expires at %s", name, until)
	}
	return al, true
}

// expiring reports whether c is within ExpiringWithin of its expiry, or
// within a sixth of its lifetime when that is shorter, and not renewed as
// planned: a certificate certkeeper renews, with no failure, whose renewal
// is still ahead (a CA's window may place it as late as a tenth of its
// lifetime before its expiry) alerts only once status calls it expiring,
// at a tenth, or once its planned time has passed. (A trial: healthy
// certificates in a late window sent expiring, then resolved, at every
// renewal.)
func (a *Alerter) expiring(c status.Cert, now time.Time) bool {
	within := or(a.ExpiringWithin, DefaultExpiringWithin)
	if life := c.NotAfter.Sub(c.NotBefore); !c.NotBefore.IsZero() && life > 0 {
		within = min(within, life/6)
	}
	planned := c.Issuer != fileIssuer && c.LastError == "" && c.NextRenewal.After(now) && c.State != status.Expiring && c.State != status.Expired
	return c.NotAfter.Sub(now) <= within && !planned
}

// fileIssuer is the issuer status gives a certificate served from files
// (cert_file), which certkeeper reads but never renews.
const fileIssuer = "file"

// due returns the alert c warrants, and whether it is due now.
func (a *Alerter) due(c status.Cert, s certState, now time.Time) (Alert, bool) {
	al := a.alertFor(c, s, now)
	name := strings.Join(c.Names, ", ")
	switch {
	case c.State == status.Damaged:
		al.Reason = Damaged
		al.Message = fmt.Sprintf("the stored record %s cannot be read, so its certificate is not renewed: %s", c.Key, c.LastError)
		if len(c.Names) > 0 {
			al.Message = fmt.Sprintf("the stored record of %s (%s) cannot be read, so it is not renewed: %s", name, c.Key, c.LastError)
		}
	case c.NotAfter.IsZero():
		// No certificate yet: its first issuance is failing.
		if s.FailingSince.IsZero() || now.Sub(s.FailingSince) < or(a.FailingFor, DefaultFailingFor) {
			return al, false
		}
		al.Reason = IssuanceFailing
		al.Message = fmt.Sprintf("obtaining a first certificate for %s has failed since %s: %s", name,
			s.FailingSince.UTC().Format(time.RFC3339), c.LastError)
	case a.expiring(c, now):
		al.Reason = Expiring
		al.Message = fmt.Sprintf("certificate for %s expires at %s (in %s)", name, c.NotAfter.UTC().Format(time.RFC3339),
			c.NotAfter.Sub(now).Round(time.Second))
		if !now.Before(c.NotAfter) {
			al.Message = fmt.Sprintf("certificate for %s expired at %s (%s ago)", name, c.NotAfter.UTC().Format(time.RFC3339),
				now.Sub(c.NotAfter).Round(time.Second))
		}
		if c.LastError != "" && c.Issuer == fileIssuer {
			al.Message += "; its files last failed to read: " + c.LastError
		} else if c.LastError != "" {
			al.Message += "; the last renewal failed: " + c.LastError
		}
	case !s.FailingSince.IsZero() && now.Sub(s.FailingSince) >= or(a.FailingFor, DefaultFailingFor):
		al.Reason = RenewalFailing
		what := "renewing the certificate"
		if c.Issuer == fileIssuer { // nothing renews it: its files are read again when they change
			what = "reading the certificate files"
		}
		al.Message = fmt.Sprintf("%s for %s has failed since %s: %s", what, name,
			s.FailingSince.UTC().Format(time.RFC3339), c.LastError)
	default:
		return al, false
	}
	// Within Repeat, only an escalation goes out: a certificate whose
	// renewal-failing alert went out still gets its expiring one (a trial:
	// a receiver that pages on expiring and files a ticket for
	// renewal_failing missed three certificates that expired).
	escalates := al.Reason == Expiring && s.LastReason != Expiring
	if !s.LastAlert.IsZero() && now.Sub(s.LastAlert) < or(a.Repeat, DefaultRepeat) && !escalates {
		return al, false
	}
	return al, true
}

// checkRecord checks c's stored record whole (status.CheckRecord); nil
// for an entry that is not a stored certificate (a failing first
// issuance, a certificate file) or is damaged already.
func (a *Alerter) checkRecord(ctx context.Context, c status.Cert) error {
	if c.State == status.Damaged || !strings.HasPrefix(c.Key, storage.CertificatePrefix("")) {
		return nil
	}
	return status.CheckRecord(ctx, a.Storage, c.Key)
}

// send delivers al to the webhook and the command, or to the one only
// names (webhookSink, commandSink). delivered reports that at least one
// took it; missed names the one that failed while the other took it.
func (a *Alerter) send(ctx context.Context, al Alert, only string) (delivered bool, missed string, err error) {
	payload, err := json.Marshal(al)
	if err != nil {
		return false, "", err
	}
	var errs []error
	if a.Webhook != "" && (only == "" || only == webhookSink) {
		if err := a.post(ctx, payload); err != nil {
			errs = append(errs, fmt.Errorf("alert webhook: %w", err))
			missed = webhookSink
		} else {
			delivered = true
		}
	}
	if a.Exec != nil && (only == "" || only == commandSink) {
		if err := a.Exec(ctx, al, payload); err != nil {
			errs = append(errs, fmt.Errorf("alert command: %w", err))
			missed = commandSink
		} else {
			delivered = true
		}
	}
	if !delivered {
		missed = ""
	}
	if delivered {
		attrs := []any{slog.String("reason", al.Reason), slog.Any("names", al.Names), slog.String("message", al.Message)}
		if al.Reason == Resolved { // good news
			a.logger().Info("alert sent", attrs...)
		} else {
			a.logger().Warn("alert sent", attrs...)
		}
	}
	return delivered, missed, errors.Join(errs...)
}

func (a *Alerter) post(ctx context.Context, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Errors show the URL only as redact.URL gives it: it may hold a
	// password or a token.
	where := redact.URL(a.Webhook)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.Webhook, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("%s: %w", where, redact.Error(a.Webhook, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "certkeeper-alert")
	hc := a.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %s: %w", where, redact.Error(a.Webhook, err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the webhook answered %s", resp.Status) // its URL may hold a secret: not in the message
	}
	return nil
}

func (a *Alerter) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
