package status

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// The exit statuses of a monitoring check, as Nagios, Icinga, Sensu and
// the monitoring-plugins define them: a check command's status is its
// exit status, its first line of output the summary.
const (
	CheckOK       = 0 // every certificate is fine, or due and renewing
	CheckWarning  = 1 // something failed and is retried; certificates still serve
	CheckCritical = 2 // a certificate is expired, close to it, revoked or damaged
	CheckUnknown  = 3 // the storage could not be read
)

// checkListed is how many problem entries a check lists below its
// summary line; the rest are counted, so a check of a storage with a
// hundred thousand failing names stays a few kilobytes.
const checkListed = 50

// Severity is the check status one certificate contributes: CheckOK,
// CheckWarning or CheckCritical.
//
//   - Expired, damaged and revoked certificates are critical: clients fail
//     now. So is an expiring certificate certkeeper renews: less than a
//     tenth of its life is left, so renewals have failed for weeks.
//   - A failing renewal or first issuance is a warning: it is retried,
//     and the certificate (if any) still serves.
//   - An expiring certificate file (issuer "file", renewed by its owner)
//     is a warning: its owner has a third of its life left to renew it.
func Severity(s Cert) int {
	switch s.State {
	case Expired, Damaged, Revoked:
		return CheckCritical
	case Expiring:
		if s.Issuer == "file" {
			return CheckWarning
		}
		return CheckCritical
	case Failing:
		return CheckWarning
	case Renewing:
		if s.Overdue {
			return CheckWarning
		}
	}
	return CheckOK
}

// checker tallies the entries of a check: the count in each state, and
// the first checkListed problems in walk order.
type checker struct {
	total int
	// firstIssues are the entries of names with no certificate yet (a
	// failing first issuance), which total counts but the summary does
	// not call certificates.
	firstIssues int
	counts      map[string]int
	worst       int
	problems    []Cert
	more        int // problems beyond those listed
	// missing are the names asked for (Printer.Only) that no
	// certificate covers: critical, as an expired one would be.
	missing []string
	// asked is how many names were asked for (Printer.Only), if any.
	asked int
}

func (c *checker) add(s Cert) {
	if c.counts == nil {
		c.counts = make(map[string]int)
	}
	c.total++
	if s.FirstIssue {
		c.firstIssues++
	}
	c.counts[s.State]++
	sev := Severity(s)
	c.worst = max(c.worst, sev)
	if sev == CheckOK {
		return
	}
	if len(c.problems) == checkListed {
		c.more++
		return
	}
	c.problems = append(c.problems, s)
}

// checkStates is the order the summary counts states in: worst first.
var checkStates = [...]string{Expired, Damaged, Revoked, Expiring, Failing, Renewing, Fine}

// write prints the check's output: a summary line ("CERTKEEPER WARNING -
// 2 failing, 12 fine of 14 certificate(s) | expired=0 ... fine=12", the
// plugin format's performance data after the "|"), then a line for each
// problem with its error and next attempt.
func (c *checker) write(w io.Writer, now time.Time) error {
	var parts []string
	if len(c.missing) > 0 {
		c.worst = CheckCritical
		parts = append(parts, fmt.Sprintf("%d missing", len(c.missing)))
	}
	word := [...]string{"OK", "WARNING", "CRITICAL"}[c.worst]
	for _, st := range checkStates {
		if n := c.counts[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	// Performance data, for the check runners that graph it: every count,
	// zeros too, after the summary's "|".
	perf := make([]string, 0, len(checkStates)+1)
	for _, st := range checkStates {
		perf = append(perf, fmt.Sprintf("%s=%d", st, c.counts[st]))
	}
	if c.asked > 0 {
		perf = append(perf, fmt.Sprintf("missing=%d", len(c.missing)))
	}
	var summary string
	switch {
	case c.asked > 0:
		// Entries for the names asked for, however many there are (a
		// name's certificate and its failing first issuance, a damaged
		// record that may be one of theirs): the names count.
		summary = fmt.Sprintf("%s for %d name(s) asked for", strings.Join(parts, ", "), c.asked)
	case c.total == 0:
		summary = "no certificates"
	default:
		summary = fmt.Sprintf("%s of %d certificate(s)", strings.Join(parts, ", "), c.total-c.firstIssues)
		if c.firstIssues > 0 {
			summary += fmt.Sprintf(" and %d name(s) with none yet", c.firstIssues)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CERTKEEPER %s - %s | %s\n", word, summary, strings.Join(perf, " "))
	for _, name := range c.missing {
		fmt.Fprintf(&b, "%s: no certificate\n", name)
	}
	for _, s := range c.problems {
		fmt.Fprintf(&b, "%s: %s", Label(s), s.State)
		switch {
		case s.State == Expired:
			fmt.Fprintf(&b, " at %s", timeOrDash(s.NotAfter))
		case s.State == Expiring:
			fmt.Fprintf(&b, ", expires %s", timeOrDash(s.NotAfter))
		case s.State == Revoked:
			fmt.Fprintf(&b, " (%s)", s.Revoked)
		case s.Overdue:
			fmt.Fprintf(&b, " and overdue since %s: nothing renewed it (is the proxy or server on this storage running? does cert renew run?)", timeOrDash(s.NextRenewal))
		}
		if s.LastError != "" {
			fmt.Fprintf(&b, ": %s", s.LastError)
		}
		if note := s.RetryNote(now, timeOrDash); note != "" && s.State != Damaged {
			fmt.Fprintf(&b, " (%s)", note)
		}
		b.WriteByte('\n')
	}
	if c.more > 0 {
		fmt.Fprintf(&b, "... and %d more; \"certkeeper status\" lists them all\n", c.more)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CheckUnknownLine is the check's output when the storage cannot be read:
// the summary line of an UNKNOWN status naming err.
func CheckUnknownLine(err error) string {
	return "CERTKEEPER UNKNOWN - " + err.Error() + "\n"
}
