// Package certfile keeps certificates as files in the classic layout that
// web servers, mail servers and other ACME clients read:
//
//	DIR/private/NAME.key   the private key, PEM, mode 0600, directory 0700
//	DIR/certs/NAME.pem     the leaf followed by its chain, PEM, mode 0644, directory 0755
//
// NAME is the certificate's primary name, normalised (package hostname), with
// a wildcard's "*." spelled "wildcard_" and an IPv6 literal's ":" spelled
// "_", as in storage keys: "*.a.test" is wildcard_a.test.key.
//
// It exists for the `certkeeper cert` commands and for servers that read
// files rather than ask certkeeper: the engine itself keeps certificates in
// a storage.Storage, where key and chain are one value. Two files cannot
// be replaced in one atomic step; Dir.Write documents the order it uses and
// what a reader or a crash can see.
//
// What it does not do: it does not obtain or renew certificates (package
// certfile/renew does, on top of it), reload the servers that read the
// files, keep backups beyond the one previous certificate WriteKeepOld
// keeps as NAME.pem.old, change the owner or group of what it writes
// (files belong to the writing user), or serialise
// concurrent writers of one name: callers that may race hold a lock (the
// renewal path holds storage.IssueLock).
package certfile

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/regularfile"
	"github.com/certkeeper/certkeeper/storage"
)

// ErrKeyMismatch is wrapped by errors for a private key that is not the
// key of the certificate it is paired with.
var ErrKeyMismatch = errors.New("private key does not match the certificate")

// Dir is a directory holding private/ and certs/. The empty Dir is refused
// rather than taken to mean the working directory.
type Dir string

// Paths are the two files of one certificate.
type Paths struct {
	// Key is DIR/private/NAME.key.
	Key string
	// Cert is DIR/certs/NAME.pem.
	Cert string
}

// Base is the pair's file name base, NAME (Pair.Base): what the files
// beside the pair (renewal settings, marks) are named for.
func (p Paths) Base() string { return strings.TrimSuffix(filepath.Base(p.Cert), ".pem") }

// DefaultDir returns the directory `certkeeper cert` uses when none is
// given: /etc/ssl when running as root on a Unix system, where system
// services look for certificates; otherwise .acme in the user's home
// directory (os.UserHomeDir, also on Windows).
func DefaultDir() (Dir, error) {
	if runtime.GOOS != "windows" && os.Geteuid() == 0 {
		return "/etc/ssl", nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the default certificate directory: %w", err)
	}
	return Dir(filepath.Join(home, ".acme")), nil
}

// Paths returns where the key and the chain of the certificate whose
// primary name is name live. name must be normalised, as by
// hostname.Normalizer{AllowIP: true, AllowWildcard: true}; anything else is
// refused, so a name can never reach outside DIR.
func (d Dir) Paths(name string) (Paths, error) {
	if d == "" {
		return Paths{}, fmt.Errorf("certificate files for %s: no directory", name)
	}
	base, err := fileBase(name)
	if err != nil {
		return Paths{}, fmt.Errorf("certificate files for %s: %w", name, err)
	}
	return Paths{
		Key:  filepath.Join(string(d), "private", base+".key"),
		Cert: filepath.Join(string(d), "certs", base+".pem"),
	}, nil
}

// NameOfBase is the name whose files are named base (DIR/certs/BASE.pem):
// "wildcard_a.test" is "*.a.test", "2001_db8__1" is "2001:db8::1"; any
// other base is returned as it is. A user copies the file name cert issue
// printed, so a command taking a certificate's name takes that too.
func NameOfBase(base string) string {
	if rest, ok := strings.CutPrefix(base, "wildcard_"); ok {
		return "*." + rest
	}
	if ip, err := netip.ParseAddr(strings.ReplaceAll(base, "_", ":")); err == nil && strings.Contains(base, "_") {
		return ip.String()
	}
	return base
}

// fileBase spells a normalised name as a file name without extension.
func fileBase(name string) (string, error) {
	n, err := hostname.Normalizer{AllowIP: true, AllowWildcard: true}.Normalize(name)
	if err != nil {
		return "", err
	}
	if n != name {
		return "", fmt.Errorf("name %q is not normalised (want %q)", name, n)
	}
	return storage.NameSegment(n)
}

// Read returns the key and the chain (leaf first) of the certificate for
// name. A missing file gives an error for which errors.Is(err,
// fs.ErrNotExist) is true; a key that is not the leaf's gives
// ErrKeyMismatch (which a crash during Write can leave: Write repairs it).
func (d Dir) Read(name string) (crypto.Signer, []*x509.Certificate, error) {
	p, err := d.Paths(name)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := readPEM(p.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("reading key of %s: %w", name, err)
	}
	chainPEM, err := readPEM(p.Cert)
	if err != nil {
		return nil, nil, fmt.Errorf("reading certificate of %s: %w", name, err)
	}
	key, chain, err := parsePair(keyPEM, chainPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s (%s, %s): %w", name, p.Key, p.Cert, err)
	}
	return key, chain, nil
}

// parsePair parses a key and a chain and checks that they belong together.
// The chain may hold nothing but certificates: a key block in it would be
// published with the chain's mode 0644.
// MaxFileSize is the most a key or certificate file may hold: a chain of
// a few certificates is a few kilobytes.
const MaxFileSize = 1 << 20

// readPEM reads a key or certificate file through regularfile: a named
// pipe or a device put in its place is refused at once, where reading it
// hung a renewal (a security trial), and a huge file is not read.
func readPEM(path string) ([]byte, error) { return regularfile.Read(path, MaxFileSize) }

func parsePair(keyPEM, chainPEM []byte) (crypto.Signer, []*x509.Certificate, error) {
	key, err := storage.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, err
	}
	var chain []*x509.Certificate
	for rest := chainPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("chain holds a %q block, want only certificates", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing certificate %d of the chain: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("no PEM certificate in the chain")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, nil, ErrKeyMismatch
	}
	return key, chain, nil
}

// covers reports whether leaf lists name among its subject alternative
// names, exactly (a wildcard as a wildcard).
func covers(leaf *x509.Certificate, name string) bool {
	if a, err := netip.ParseAddr(name); err == nil {
		return slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool {
			b, ok := netip.AddrFromSlice(ip)
			return ok && b.Unmap() == a
		})
	}
	return slices.Contains(leaf.DNSNames, name)
}
