package renew

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/regularfile"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/storage"
)

// earlyWindow begins the reason of a certificate due because its CA's ARI
// window comes before the lifetime rule's time.
const earlyWindow = "the CA asks for early renewal (ARI window)"

// isDue applies force, grace, or the Manager's rule (the ARI window when
// the CA offers one, else the lifetime rule), says why, and returns the
// CA's window it asked for (the zero Window if none).
func isDue(ctx context.Context, force bool, grace time.Duration, ari RenewalInfoer, leaf *x509.Certificate, now time.Time) (bool, string, renewal.Window) {
	switch {
	case force:
		return true, "forced", renewal.Window{}
	case grace > 0:
		left := leaf.NotAfter.Sub(now)
		return left <= grace, "expires in " + approx(left), renewal.Window{}
	}
	due, why, explanation, c := dueAt(ctx, ari, leaf, now)
	if due.After(now) {
		return false, fmt.Sprintf("due %s (%s)", due.UTC().Format(time.RFC3339), why), c.ARI
	}
	if renewal.Early(c, now) {
		// The CA asks for it sooner than the lifetime rule (an incident, a
		// revocation ahead); RFC 9773 asks for its explanation to be shown.
		why = earlyWindow
		if printableURL(explanation) {
			why += ": " + explanation
		}
	}
	return true, why, c.ARI
}

// dueAt is when leaf is due by the Manager's rule (the ARI window ari gives,
// when it gives one, else the lifetime rule), why (which rule), the CA's
// explanation URL, and the certificate as the rule saw it.
func dueAt(ctx context.Context, ari RenewalInfoer, leaf *x509.Certificate, now time.Time) (due time.Time, why, explanation string, c renewal.Cert) {
	c = renewal.Cert{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: leaf.SerialNumber}
	why = "lifetime rule"
	if ari != nil {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ri, err := ari.RenewalInfo(actx, leaf)
		cancel()
		switch {
		case err == nil && ri.HasWindow():
			c.ARI = renewal.Window{Start: ri.SuggestedWindow.Start, End: ri.SuggestedWindow.End}
			why, explanation = "ARI window", ri.ExplanationURL
		case err != nil && !errors.Is(err, acme.ErrUnsupported):
			// Said, not failed: the CA may be down for a moment; but a CA
			// this run cannot reach (its roots, its URL) will fail the
			// renewal when it is due, weeks from now (a migration trial).
			why = "lifetime rule; the CA's renewal window (ARI) could not be fetched: " + oneLine(err.Error())
		}
	}
	return renewal.Due(c, now, nil), why, explanation, c
}

// oneLine is s on one line of at most 200 characters, for a summary.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

// printableURL reports whether s, a URL from the CA, is an http or https
// URL of printable ASCII, fit to print in a summary on a terminal: the
// CA's text must not carry control sequences or line breaks into it.
func printableURL(s string) bool {
	for _, r := range s {
		if r <= ' ' || r > '~' {
			return false
		}
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// approx is d for a reader: whole days from two days on, else to the
// second.
func approx(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	return d.Round(time.Second).String()
}

// repairPair rewrites a pair whose key and certificate do not match (a
// run killed between writing the two) from the copy in storage: the
// stored certificate for that name whose key or certificate is one of the
// two files.
func repairPair(ctx context.Context, st storage.Storage, dir certfile.Dir, p *certfile.Pair) (*storage.Certificate, error) {
	keyPEM, _ := regularfile.Read(p.Paths.Key, certfile.MaxFileSize)
	chainPEM, _ := regularfile.Read(p.Paths.Cert, certfile.MaxFileSize)
	var best *storage.Certificate
	match := func(k string) bool { return strings.HasSuffix(k, "/"+p.Base+".json") }
	err := storage.EachCertificate(ctx, st, match, func(_ string, _ []byte, rec *storage.Certificate, err error) bool {
		if err != nil {
			return true
		}
		if string(rec.KeyPEM) == string(keyPEM) || string(rec.ChainPEM) == string(chainPEM) {
			if best == nil || rec.NotAfter.After(best.NotAfter) {
				best = rec
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if best == nil {
		return nil, fmt.Errorf("no copy in storage matches its key or certificate")
	}
	if _, err := dir.Write(best.Names[0], best.KeyPEM, best.ChainPEM); err != nil {
		return nil, err
	}
	return best, nil
}

// WantFileError is a want list file that does not parse (ParseWant).
type WantFileError struct {
	File string
	Err  error
}

func (e *WantFileError) Error() string { return e.File + " " + e.Err.Error() }

func (e *WantFileError) Unwrap() error { return e.Err }

// ReadWantFile reads the want list in file (ParseWant); none for "". A
// list that does not parse is a *WantFileError; a file that cannot be
// read, the os package's error.
func ReadWantFile(file string) ([][]string, error) {
	if file == "" {
		return nil, nil
	}
	fh, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	want, err := ParseWant(fh)
	if err != nil {
		return nil, &WantFileError{File: file, Err: err}
	}
	return want, nil
}

// ParseWant reads a want list for Renewer.Want: one certificate per line,
// its names separated by spaces, the first naming the files; blank lines
// and # comments are skipped. Names are normalised (IP literals and
// wildcards allowed) and duplicates on a line dropped. An error names the
// line.
func ParseWant(rd io.Reader) ([][]string, error) {
	n := hostname.Normalizer{AllowIP: true, AllowWildcard: true}
	var out [][]string
	sc := bufio.NewScanner(rd)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var names []string
		for _, raw := range strings.Fields(text) {
			name, err := n.Normalize(raw)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		if _, err := storage.NameSegment(names[0]); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, names)
	}
	return out, sc.Err()
}
