package certfile

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/certkeeper/certkeeper/internal/atomicfile"
)

// Pair is one complete key/certificate pair found in a Dir.
type Pair struct {
	// Base is the file name without extension ("a.example",
	// "wildcard_a.example").
	Base string
	// Paths are its two files.
	Paths Paths
	// Key and Chain are parsed (nil when Err is set).
	Key   crypto.Signer
	Chain []*x509.Certificate
	// Err says why the pair could not be used: unreadable, unparsable,
	// key and certificate not matching. Such a pair must be reported and
	// left alone.
	Err error
}

// Pairs lists the complete pairs in d: every certs/BASE.pem that has a
// private/BASE.key. A certificate without a key (/etc/ssl/certs also holds
// the system's CA certificates) is not a pair and is skipped silently; a
// pair that does not parse is returned with Err set, and so is one whose
// key cannot be looked at (private/ unreadable to this user: run as the
// files' owner), rather than skipped as if it had no key. The result is
// sorted by Base.
func (d Dir) Pairs() ([]Pair, error) {
	if d == "" {
		return nil, errors.New("certfile: empty directory")
	}
	entries, err := os.ReadDir(filepath.Join(string(d), "certs"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing %s: %w", filepath.Join(string(d), "certs"), err)
	}
	var pairs []Pair
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".pem")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		p := Paths{Key: filepath.Join(string(d), "private", base+".key"), Cert: filepath.Join(string(d), "certs", e.Name())}
		pair := Pair{Base: base, Paths: p}
		_, err := os.Stat(p.Key)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var keyPEM []byte
		if err == nil {
			keyPEM, err = readPEM(p.Key)
		}
		if err == nil {
			var chainPEM []byte
			if chainPEM, err = readPEM(p.Cert); err == nil {
				pair.Key, pair.Chain, err = parsePair(keyPEM, chainPEM)
			}
		}
		if err != nil {
			var hint string
			if errors.Is(err, fs.ErrPermission) {
				hint = fmt.Sprintf(" (run as the user who owns %s)", string(d))
			}
			pair.Err = fmt.Errorf("%s: %w%s", base, err, hint)
			pair.Key, pair.Chain = nil, nil
		}
		pairs = append(pairs, pair)
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].Base < pairs[j].Base })
	return pairs, nil
}

// Names returns the names a certificate covers, with primary (if the
// certificate lists it) first, then its DNS names and IP addresses in
// certificate order.
func Names(leaf *x509.Certificate, primary string) []string {
	var names []string
	add := func(n string) {
		for _, have := range names {
			if have == n {
				return
			}
		}
		names = append(names, n)
	}
	if primary != "" && covers(leaf, primary) {
		add(primary)
	}
	for _, n := range leaf.DNSNames {
		add(n)
	}
	for _, ip := range leaf.IPAddresses {
		add(ip.String())
	}
	return names
}

// WriteKeepOld is Write that first keeps the current certificate (if any)
// as certs/NAME.pem.old, so an operator can go back to it.
func (d Dir) WriteKeepOld(name string, keyPEM, chainPEM []byte) (Paths, error) {
	p, err := d.Paths(name)
	if err != nil {
		return Paths{}, err
	}
	if err := d.mkdirs(p); err != nil { // first: the directories are this user's
		return Paths{}, fmt.Errorf("writing certificate files for %s: %w", name, err)
	}
	if old, err := readCert(p.Cert); err == nil {
		if err := atomicfile.WriteFile(p.Cert+".old", old, 0o644); err != nil {
			return Paths{}, fmt.Errorf("keeping the previous certificate of %s: %w", name, err)
		}
	}
	return d.Write(name, keyPEM, chainPEM)
}

// readCert reads the certificate file at path to keep it as .old: a
// regular file of certificates alone, not through a symbolic link (one
// put there for a moment made root copy /etc/shadow to a file anyone
// could read: a security trial).
func readCert(path string) ([]byte, error) {
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	if b, _ := pem.Decode(data); b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: not a PEM certificate", path)
	}
	return data, nil
}

// WriteCert writes only the certificate file of name (leaf + chain), for a
// certificate issued for a CSR whose key stays with its owner. The file is
// replaced atomically; the previous one is kept as certs/NAME.pem.old.
func (d Dir) WriteCert(name string, chainPEM []byte) (string, error) {
	p, err := d.Paths(name)
	if err != nil {
		return "", err
	}
	for _, dir := range []string{string(d), filepath.Dir(p.Cert)} {
		if err := mkdir(dir, 0o755); err != nil {
			return "", fmt.Errorf("writing the certificate of %s: %w", name, err)
		}
	}
	if old, err := readCert(p.Cert); err == nil {
		// Best effort: the new certificate matters more than the old one.
		_ = atomicfile.WriteFile(p.Cert+".old", old, 0o644)
	}
	if err := atomicfile.WriteFile(p.Cert, chainPEM, 0o644); err != nil {
		return "", fmt.Errorf("writing the certificate of %s: %w", name, err)
	}
	return p.Cert, nil
}
