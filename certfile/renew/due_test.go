package renew

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// windowAnswer is a CA's answer to an ARI request: this window and
// explanation URL.
type windowAnswer struct {
	start, end  time.Time
	explanation string
}

func (w windowAnswer) RenewalInfo(context.Context, *x509.Certificate) (acme.RenewalInfo, error) {
	var ri acme.RenewalInfo
	ri.SuggestedWindow.Start, ri.SuggestedWindow.End, ri.ExplanationURL = w.start, w.end, w.explanation
	return ri, nil
}

// TestIsDueEarlyWindow: a window the CA moved before the lifetime rule's
// time makes a certificate due at once, and the detail cert renew prints
// says the CA asked, with its explanation URL (RFC 9773 asks clients to
// show it); a window where the CA usually puts it waits, naming the time.
func TestIsDueEarlyWindow(t *testing.T) {
	now := time.Now()
	leaf := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(89 * 24 * time.Hour)}
	due, why, _ := isDue(t.Context(), false, 0, windowAnswer{now.Add(-2 * time.Hour), now.Add(-time.Hour), "https://ca.test/incident"}, leaf, now)
	if !due || why != "the CA asks for early renewal (ARI window): https://ca.test/incident" {
		t.Errorf("window in the past: due %v, %q", due, why)
	}
	due, why, _ = isDue(t.Context(), false, 0, windowAnswer{now.Add(-2 * time.Hour), now.Add(-time.Hour), ""}, leaf, now)
	if !due || why != "the CA asks for early renewal (ARI window)" {
		t.Errorf("window in the past, no explanation: due %v, %q", due, why)
	}
	// The CA's text is printed only as a plain URL: no escape sequence or
	// line break reaches the operator's terminal.
	for _, bad := range []string{"https://ca.test/\x1b[2J", "https://ca.test/a\nrenewed", "javascript:alert(1)", "see our blog", "https://ca.test/é"} {
		due, why, _ = isDue(t.Context(), false, 0, windowAnswer{now.Add(-2 * time.Hour), now.Add(-time.Hour), bad}, leaf, now)
		if !due || why != "the CA asks for early renewal (ARI window)" {
			t.Errorf("explanation %q: due %v, %q", bad, due, why)
		}
	}
	due, why, _ = isDue(t.Context(), false, 0, windowAnswer{now.Add(59 * 24 * time.Hour), now.Add(61 * 24 * time.Hour), ""}, leaf, now)
	if due || !strings.HasSuffix(why, "(ARI window)") || !strings.HasPrefix(why, "due ") {
		t.Errorf("window two months on: due %v, %q", due, why)
	}
}

// ariError is a CA whose renewal window cannot be fetched.
type ariError struct{ err error }

func (a ariError) RenewalInfo(context.Context, *x509.Certificate) (acme.RenewalInfo, error) {
	return acme.RenewalInfo{}, a.err
}

// TestIsDueARIFailure: a renewal window that could not be fetched (the
// CA's roots not trusted, the CA down) is said in the detail cert renew
// prints, not only in a debug log (a migration trial saw "not due" for a
// CA the run could not reach, which would fail the renewal when due); a
// CA without ARI is the plain lifetime rule.
func TestIsDueARIFailure(t *testing.T) {
	now := time.Now()
	leaf := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(89 * 24 * time.Hour)}
	due, why, _ := isDue(t.Context(), false, 0, ariError{errors.New("could not get a valid ARI response; last error: tls: failed to verify certificate:\nx509: certificate signed by unknown authority")}, leaf, now)
	if due || !strings.HasSuffix(why, "(lifetime rule; the CA's renewal window (ARI) could not be fetched: could not get a valid ARI response; last error: tls: failed to verify certificate: x509: certificate signed by unknown authority)") {
		t.Errorf("ARI failing: due %v, %q", due, why)
	}
	due, why, _ = isDue(t.Context(), false, 0, ariError{fmt.Errorf("%w: no renewalInfo", acme.ErrUnsupported)}, leaf, now)
	if due || !strings.HasSuffix(why, "(lifetime rule)") {
		t.Errorf("a CA without ARI: due %v, %q", due, why)
	}
}
