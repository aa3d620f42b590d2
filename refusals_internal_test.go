package certkeeper

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/policy"
)

// TestRefusalsBounded: a refused name is logged once per interval; a
// flood of distinct names fills a fixed-size set and no more, the rest
// counted; the next interval starts afresh and reports the count.
func TestRefusalsBounded(t *testing.T) {
	r := &refusals{interval: time.Minute, max: 64}
	t0 := time.Now()
	if log, _, _ := r.note("a.example", t0); !log {
		t.Fatal("first refusal of a.example not logged")
	}
	if log, _, _ := r.note("a.example", t0.Add(time.Second)); log {
		t.Error("a.example logged twice in one interval")
	}
	var logged, fulls int
	const flood = 100_000
	for i := range flood {
		log, full, _ := r.note(fmt.Sprintf("n%d.attacker.example", i), t0.Add(2*time.Second))
		if log {
			logged++
		}
		if full {
			fulls++
		}
		if r.size() > 64 {
			t.Fatalf("after %d names the set holds %d, more than its 64", i+1, r.size())
		}
	}
	if logged != 63 || fulls != 1 {
		t.Errorf("flood: %d names logged and %d \"full\" notices, want 63 and 1", logged, fulls)
	}
	log, _, suppressed := r.note("a.example", t0.Add(time.Minute+time.Second))
	if !log || suppressed != flood-63 {
		t.Errorf("next interval: logged %v, %d reported unlogged; want true and %d", log, suppressed, flood-63)
	}
	if r.size() != 1 {
		t.Errorf("the new interval holds %d names, want 1", r.size())
	}
}

// TestRefusalsAllowedApart: a flood of names the policy refuses fills
// their allowance, and a name the policy allows that a limit held back
// (the client's) is still logged: an ops trial's scanner flood hid the
// refusals of its own names for the rest of the hour.
func TestRefusalsAllowedApart(t *testing.T) {
	var logs bytes.Buffer
	m := &Manager{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	m.refused.max, m.limited.max = 8, 8
	for i := range 100 {
		m.logRefused(fmt.Sprintf("n%d.scanner.example", i), fmt.Errorf("%w: not in the allowlist", policy.ErrDenied))
	}
	m.logRefused("shop.example", ErrClientLimit)
	if !strings.Contains(logs.String(), "name=shop.example") {
		t.Errorf("an allowed name held back by the client limit, after a flood of refused names, was not logged:\n%s", logs.String())
	}
}
