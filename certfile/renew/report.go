package renew

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
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
