// Package truststore installs a root certificate into the trust stores of the
// machine it runs on, and removes it again: the operating system's store
// (which curl, OpenSSL, Go and most programs read) and the NSS databases that
// Firefox and Chromium keep per user.
//
// It exists so that certkeeper's local CA (issuer/localca) can be trusted in
// one step for development and intranets, as `caddy trust` and mkcert do,
// instead of a recipe that differs on every system. Each store is changed by
// the system's own tool (update-ca-certificates, update-ca-trust, trust,
// certctl, security, certutil), so the result is exactly what an
// administrator doing it by hand would get, and Untrust undoes it.
//
// Tested on Debian (update-ca-certificates, NSS certutil); Fedora/RHEL,
// Arch, openSUSE, FreeBSD, macOS and Windows follow their documented
// commands and are not tested here.
package truststore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/certkeeper/certkeeper/internal/atomicfile"
)

// Options says which stores Trust and Untrust change. The zero value changes
// the system store and every NSS database found.
type Options struct {
	// SkipSystem leaves the operating system's trust store alone.
	SkipSystem bool
	// SkipNSS leaves the NSS databases (Firefox, Chromium) alone.
	SkipNSS bool
	// Home is the directory searched for NSS databases; empty means the
	// user's home directory.
	Home string
}

// Result is what was done to one store.
type Result struct {
	// Store names the store: "system" or "nss".
	Store string
	// Where is the file, keychain or database changed.
	Where string
	// Err is why the store could not be changed; nil on success.
	Err error
}

// String describes r for a person.
func (r Result) String() string {
	if r.Err != nil {
		return fmt.Sprintf("%s (%s): %v", r.Store, r.Where, r.Err)
	}
	return fmt.Sprintf("%s (%s): done", r.Store, r.Where)
}

// ErrNoStore means no trust store this package knows was found.
var ErrNoStore = errors.New("no trust store found")

// Name is the name under which root is installed: the same for Trust and
// Untrust, and different for every root, so that two local CAs (two
// storages) can be trusted side by side.
func Name(root *x509.Certificate) string {
	sum := sha256.Sum256(root.Raw)
	return "certkeeper local CA " + hex.EncodeToString(sum[:8])
}

// fileName is the file name of root in a directory of anchors.
func fileName(root *x509.Certificate) string {
	sum := sha256.Sum256(root.Raw)
	return "certkeeper-" + hex.EncodeToString(sum[:8]) + ".crt"
}

// Trust installs root into the stores that o selects. It returns one Result
// per store it tried, and an error joining their failures (or ErrNoStore
// when it found no store at all).
func Trust(ctx context.Context, root *x509.Certificate, o Options) ([]Result, error) {
	return apply(ctx, root, o, true)
}

// Untrust removes root from the stores that o selects. Removing a root that
// is not installed succeeds.
func Untrust(ctx context.Context, root *x509.Certificate, o Options) ([]Result, error) {
	return apply(ctx, root, o, false)
}

func apply(ctx context.Context, root *x509.Certificate, o Options, install bool) ([]Result, error) {
	if root == nil {
		return nil, errors.New("truststore: no certificate")
	}
	if !root.IsCA || !root.BasicConstraintsValid {
		return nil, fmt.Errorf("truststore: %s is not a CA certificate: give the CA's root", root.Subject)
	}
	var results []Result
	if !o.SkipSystem {
		results = append(results, systemStore(ctx, root, install))
	}
	if !o.SkipNSS {
		results = append(results, nssStores(ctx, root, o.Home, install)...)
	}
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s trust store %s: %w", r.Store, r.Where, r.Err))
		}
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoStore, noStoreReason(o))
	}
	return results, errors.Join(errs...)
}

// pemOf encodes root as PEM.
func pemOf(root *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
}

// tempPEM writes root as PEM to a temporary file for a tool that reads one,
// and returns its path and a func that removes it.
func tempPEM(root *x509.Certificate) (string, func(), error) {
	f, err := os.CreateTemp("", "certkeeper-root-*.crt")
	if err != nil {
		return "", nil, err
	}
	remove := func() { os.Remove(f.Name()) }
	_, werr := f.Write(pemOf(root))
	if err := errors.Join(werr, f.Close()); err != nil {
		remove()
		return "", nil, err
	}
	return f.Name(), remove, nil
}

// run runs a store's tool and returns its error with its output, which says
// what went wrong far better than an exit status. It keeps the terminal
// (not internal/proc's session of its own, which hooks get): certutil
// asks there for the password of an NSS database that has one.
func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return nil
}

// anchorDir is a directory of trust anchors and the command that rebuilds
// the system bundle from it.
type anchorDir struct {
	dir  string
	tool string
	args []string
}

// updateAnchors writes (or removes) root as a file in a.dir and runs the
// system's tool to rebuild the bundles programs read.
func updateAnchors(ctx context.Context, a anchorDir, root *x509.Certificate, install bool) Result {
	path := filepath.Join(a.dir, fileName(root))
	r := Result{Store: "system", Where: path}
	if install {
		if err := writeAnchor(path, pemOf(root)); err != nil {
			r.Err = permissionHint(err)
			return r
		}
	} else if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.Err = permissionHint(err)
		return r
	}
	if err := run(ctx, a.tool, a.args...); err != nil {
		r.Err = permissionHint(err)
	}
	return r
}

// writeAnchor writes data to path atomically, readable by everyone (a trust
// anchor is public, and programs of every user read it).
func writeAnchor(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return atomicfile.WriteFile(path, data, 0o644)
}

// permissionHint adds what to do to a permission error.
func permissionHint(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (the system trust store needs root: run it with sudo, or give --no-system to change only your browsers' stores)", err)
	}
	return err
}

// noStoreReason says where apply looked, for ErrNoStore: the system store
// was skipped, and no browser's NSS database was found (or certutil).
func noStoreReason(o Options) string {
	if _, err := exec.LookPath("certutil"); err != nil && runtime.GOOS != "windows" {
		return "the system store was skipped, and certutil (which browsers' NSS databases need; Debian: libnss3-tools) is not installed"
	}
	home := o.Home
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return fmt.Sprintf("the system store was skipped, and %s holds no browser's NSS database (.pki/nssdb, a Firefox profile: start the browser once to make one)", home)
}
