package renew

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
)

// Failures counts the results that went wrong: Failed ones (including a
// renewed certificate whose AfterRenew failed) and Unparsable ones.
// explain, if not nil, rewrites the Detail of each Failed result that was
// not renewed from its Err, to add what to do about it.
func Failures(results []*Result, explain func(error) string) int {
	failed := 0
	for _, j := range results {
		switch {
		case j.Action == Failed && !j.NotAfter.IsZero():
			failed++ // renewed, but AfterRenew failed
		case j.Action == Failed:
			failed++
			if explain != nil {
				j.Detail = explain(j.Err)
			}
		case j.Action == Unparsable:
			failed++
		}
	}
	return failed
}

// WriteSummary writes results as a table: each certificate's Base, Action
// and Detail.
func WriteSummary(w io.Writer, results []*Result) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tRESULT\tDETAIL")
	for _, j := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", j.Base, j.Action, j.Detail)
	}
	tw.Flush()
}

// ReadError is a certificate's files in a directory that could not be
// read.
type ReadError struct {
	Name string
	Dir  certfile.Dir
	Err  error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("reading the certificate files of %s in %s: %v", e.Name, e.Dir, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

// Show writes what dir holds for the certificate whose files are named
// for name (normalised): its names, expiry, issuer and files, one
// "key: value" a line, then its renewal settings (Settings.Values) or
// that there are none. Files that cannot be read are a *ReadError.
func Show(w io.Writer, dir certfile.Dir, name string) error {
	paths, err := dir.Paths(name)
	if err != nil {
		return err
	}
	_, chain, err := dir.Read(name)
	if err != nil {
		return &ReadError{Name: name, Dir: dir, Err: err}
	}
	leaf := chain[0]
	fmt.Fprintf(w, "certificate: %s\n", name)
	fmt.Fprintf(w, "names: %s\n", strings.Join(certfile.Names(leaf, name), " "))
	fmt.Fprintf(w, "not_after: %s\n", leaf.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "issuer: %s\n", leaf.Issuer.CommonName)
	fmt.Fprintf(w, "cert_file: %s\nkey_file: %s\n", paths.Cert, paths.Key)
	path, err := SettingsPath(dir, name)
	if err != nil {
		return err
	}
	s, err := LoadSettings(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(w, "renewal settings: none (%s is absent: cert renew uses its flags, and remembers them)\n", path)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(w, "renewal settings: %s\n", path)
	s.Values(func(key, value string) { fmt.Fprintf(w, "  %s = %s\n", key, value) })
	return nil
}

// List writes the certificates dir holds, one pair a line: its Base (the
// NAME Show takes), expiry and names, or why it cannot be read; or that
// it holds none. A dir that cannot be listed is an error (one for which
// errors.Is(err, fs.ErrNotExist) holds when it does not exist).
func List(w io.Writer, dir certfile.Dir) error {
	pairs, err := dir.Pairs()
	if err != nil {
		return err
	}
	if len(pairs) == 0 {
		fmt.Fprintf(w, "no certificates in %s (certs/NAME.pem with private/NAME.key)\n", dir)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tNOT_AFTER\tNAMES")
	for _, p := range pairs {
		if p.Err != nil {
			fmt.Fprintf(tw, "%s\t-\tunreadable: %v\n", p.Base, p.Err)
			continue
		}
		leaf := p.Chain[0]
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Base, leaf.NotAfter.UTC().Format(time.RFC3339), strings.Join(certfile.Names(leaf, certfile.NameOfBase(p.Base)), " "))
	}
	return tw.Flush()
}

// Previous is what a directory held for a certificate before it was
// issued again under the same name (cert issue -d NAME once more): the
// names of its certificate and its renewal settings. Changes says what
// the new issuance replaced, which would otherwise go unnoticed: a name
// dropped from the certificate, a challenge or account changed for its
// renewals.
type Previous struct {
	Names    []string
	Settings Settings

	leaf *x509.Certificate // the certificate dir holds, for Kept
}

// ReadPrevious returns what dir holds for the certificate named name, or
// nil when it holds none (or none that can be read: there is nothing to
// compare with then).
func ReadPrevious(dir certfile.Dir, name string) *Previous {
	_, chain, err := dir.Read(name)
	if err != nil {
		return nil
	}
	p := &Previous{Names: certfile.Names(chain[0], name), leaf: chain[0]}
	if path, err := SettingsPath(dir, name); err == nil {
		p.Settings, _ = LoadSettings(path) // none, or unreadable: compared as none
	}
	return p
}

// Changes describes what a certificate for names, renewed with s,
// replaces of p: the names it no longer covers, those it covers now, and
// each setting that
// changed ("challenge tls-alpn-01 -> http-01"), or "" when nothing did
// (or p is nil).
func (p *Previous) Changes(names []string, s Settings) string {
	if p == nil {
		return ""
	}
	var parts []string
	var dropped []string
	for _, n := range p.Names {
		if !slices.Contains(names, n) {
			dropped = append(dropped, n)
		}
	}
	if len(dropped) > 0 {
		parts = append(parts, "no longer for "+strings.Join(dropped, ", "))
	}
	var added []string
	for _, n := range names {
		if !slices.Contains(p.Names, n) {
			added = append(added, n)
		}
	}
	if len(added) > 0 {
		parts = append(parts, "now also for "+strings.Join(added, ", "))
	}
	before, after := p.Settings.values(), s.values()
	var changed []string
	for _, key := range SettingsKeys() {
		if slices.Contains(StorageKeys(), key) && before[key] == "" {
			continue // remembered since: where it was kept is not known
		}
		if b, a := before[key], after[key]; b != a {
			changed = append(changed, fmt.Sprintf("%s %s -> %s", key, orNone(b), orNone(a)))
		}
	}
	if len(changed) > 0 {
		parts = append(parts, "renewal settings changed: "+strings.Join(changed, ", "))
	}
	return strings.Join(parts, "; ")
}

// values maps each key set in s to its value, a list's items joined by
// spaces, and a key type in its canonical spelling (Settings built
// without Set may hold another).
func (s Settings) values() map[string]string {
	m := map[string]string{}
	s.Values(func(key, value string) {
		if key == "key_type" {
			value = canonicalKeyType(value)
		}
		if m[key] != "" {
			value = m[key] + " " + value
		}
		m[key] = value
	})
	return m
}

func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// Kept reports whether issuing names again with the renewal settings s
// would only repeat what dir holds for names[0] before it is due: the
// same names, the same settings that make the certificate
// (CertificateKeys: Previous.Changes finds none of them changed; the
// others, how it is validated and deployed, the caller remembers without
// an order), and a certificate not due at now by the rule a Renewer
// applies (ari's window when not nil and the CA gives one, else the
// lifetime rule: cert issue and cert renew named different due times).
// It returns the certificate's
// NotAfter and when it is due. cert issue keeps such a certificate, as
// certbot's certonly does: configuration management runs the same command
// again and again, and each run ordered a duplicate certificate, of which
// Let's Encrypt allows five a week.
func Kept(ctx context.Context, dir certfile.Dir, names []string, s Settings, ari RenewalInfoer, now time.Time) (notAfter, due time.Time, ok bool) {
	prev := ReadPrevious(dir, names[0])
	if prev == nil {
		return time.Time{}, time.Time{}, false
	}
	made := *prev                                                 // what made the certificate, beside s's other settings
	made.Settings = s.with(prev.Settings, func(key string) bool { // a revocation mark too: it must be replaced
		return slices.Contains(CertificateKeys(), key) || slices.Contains(StateKeys(), key)
	})
	if made.Changes(names, s) != "" {
		return time.Time{}, time.Time{}, false
	}
	due, _, _, _ = dueAt(ctx, ari, prev.leaf, now)
	return prev.leaf.NotAfter, due, due.After(now)
}
