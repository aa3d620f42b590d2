package status

import (
	"strings"
	"testing"
	"time"
)

// TestOverdue: a certificate due for renewal for longer than a renewal
// takes (two days for a 90-day one, a tenth of a short lifetime), with no
// failure kept, is overdue: a check calls it a warning and says when it
// was due and what to look at (an ops trial's stopped proxy left a
// certificate "renewing", check OK, from day 60 on). One just due, one
// whose renewal failed (failing says that), or an on-demand one no
// handshake asked for in 30 days (let lapse on purpose), is not.
func TestOverdue(t *testing.T) {
	now := time.Now()
	nb, na := now.Add(-70*24*time.Hour), now.Add(20*24*time.Hour)
	for _, tc := range []struct {
		name    string
		next    time.Time
		short   bool
		failed  bool
		overdue bool
	}{
		{"due three days ago", now.Add(-72 * time.Hour), false, false, true},
		{"due an hour ago", now.Add(-time.Hour), false, false, false},
		{"due three days ago, failing", now.Add(-72 * time.Hour), false, true, false},
		{"a 240 s certificate due 30 s ago", now.Add(-30 * time.Second), true, false, true},
		{"unused on demand", now.Add(-72 * time.Hour), false, false, false},
	} {
		c := Cert{Names: []string{"o.test"}, Issuer: "ca", NotBefore: nb, NotAfter: na, NextRenewal: tc.next, Key: "certificates/ca/o.test.json"}
		if tc.name == "unused on demand" { // a Manager lets it lapse: no handshake in 40 days
			c.OnDemand, c.LastSeen = true, now.Add(-40*24*time.Hour)
		}
		if tc.short {
			c.NotBefore, c.NotAfter = now.Add(-200*time.Second), now.Add(40*time.Second)
		}
		failures := map[string]Failure{}
		if tc.failed {
			failures[c.Key] = Failure{Names: c.Names, Error: "CA down", At: now.Add(-time.Hour)}
		}
		got := finish(c, nil, map[string]time.Time{"o.test": c.LastSeen}, failures, now)
		if got.Overdue != tc.overdue {
			t.Errorf("%s: state %s, overdue %v, want overdue %v", tc.name, got.State, got.Overdue, tc.overdue)
		}
		if tc.overdue && Severity(got) != CheckWarning {
			t.Errorf("%s: severity %d, want a warning", tc.name, Severity(got))
		}
		if !tc.overdue && !tc.failed && Severity(got) != CheckOK {
			t.Errorf("%s: severity %d, want OK", tc.name, Severity(got))
		}
		if tc.name == "due three days ago" {
			var b strings.Builder
			ch := &checker{}
			ch.add(got)
			if err := ch.write(&b, now); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(b.String(), "CERTKEEPER WARNING") || !strings.Contains(b.String(), "overdue since") || !strings.Contains(b.String(), "does cert renew run?") {
				t.Errorf("check of an overdue certificate:\n%s", b.String())
			}
		}
	}
}
