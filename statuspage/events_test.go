package statuspage_test

import (
	"errors"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/statuspage"
)

// TestRecorderFolds: a certificate's failing retries (its renewal's
// failure and its issuer's, alternating) take one line each, counted,
// not the page: an ops trial's twelve attempts in two minutes pushed
// every other event off it. Another name's event, or another error, is
// a line of its own.
func TestRecorderFolds(t *testing.T) {
	var r statuspage.Recorder
	t0 := time.Date(2026, 12, 7, 16, 48, 0, 0, time.UTC)
	down := errors.New("CA down")
	r.Observe(certkeeper.Event{Kind: certkeeper.Obtained, Names: []string{"b.test"}, Time: t0})
	for i := range 12 {
		at := t0.Add(time.Duration(i+1) * 10 * time.Second)
		r.Observe(certkeeper.Event{Kind: certkeeper.IssuerFailed, Names: []string{"a.test"}, Issuer: "ca", Err: down, Time: at})
		r.Observe(certkeeper.Event{Kind: certkeeper.RenewalFailed, Names: []string{"a.test"}, Err: down, Time: at})
	}
	r.Observe(certkeeper.Event{Kind: certkeeper.RenewalFailed, Names: []string{"a.test"}, Err: errors.New("other"), Time: t0.Add(time.Hour)})
	got := r.Recent()
	if len(got) != 4 {
		t.Fatalf("%d events, want 4 (b.test obtained, a.test's two folded failures, the other error): %+v", len(got), got)
	}
	if f := got[1]; f.Kind != "renewal_failed" || f.Times != 12 || !f.Since.Equal(t0.Add(10*time.Second)) || !f.Time.Equal(t0.Add(120*time.Second)) {
		t.Errorf("folded renewal failure = %+v, want 12 times from %s to %s", f, t0.Add(10*time.Second), t0.Add(120*time.Second))
	}
	if got[3].Kind != "obtained" || got[3].Times > 1 {
		t.Errorf("oldest event = %+v, want b.test obtained, once", got[3])
	}
}
