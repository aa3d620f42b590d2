// Package migrate reads the state other ACME clients keep — certbot, lego,
// acme.sh, dehydrated and Caddy/CertMagic — and stores their certificates,
// keys and ACME accounts in certkeeper's storage, so certkeeper takes over a
// running installation without a single new order.
//
// Certificates are served at once and renewed later from the same ACME
// account, so the CA accepts ARI "replaces" (RFC 9773 §5), which only the
// account that ordered a certificate may send.
//
// Reading never modifies the source. Every entry is checked whole before
// anything is stored (the key parses and matches the certificate, the
// chain verifies against trusted roots, the account has its key and URL);
// one that does not is reported as a Problem and skipped, never
// half-imported. Importing twice changes nothing, and a certificate
// already stored is replaced only when asked (ImportOptions.Overwrite).
//
// A tool's directory is not trusted more than the CA it claims to hold
// certificates from: a certificate that does not chain to a trusted root
// would otherwise be served, and never renewed, as if the CA had issued it.
// Nor is it trusted to hold only what the tool writes: Read reads regular
// files inside it, at most 1 MiB each (see readFile).
//
// It does not carry over the tools' hooks, web server plugins or renewal
// schedules: those are certkeeper's own (see docs/migrate.md). It reports
// those of certbot it finds, each with the certkeeper flag to give instead
// (Setting), so that dropping them is never silent.
//
// certkeeper stores one certificate per CA and first name; of several the
// tool holds under one (certbot's NAME and NAME-0001 lineages), one is
// imported and the others are reported, naming the names only they cover.
package migrate

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/storage"
)

// The tools Read understands, as "certkeeper import --from" names them.
const (
	Certbot    = "certbot"
	Lego       = "lego"
	ACMESH     = "acme.sh"
	Dehydrated = "dehydrated"
	Caddy      = "caddy"
)

// Tools returns the tool names Read accepts.
func Tools() []string { return []string{Certbot, Lego, ACMESH, Dehydrated, Caddy} }

// Options adjust Read.
type Options struct {
	// DirectoryURL is the ACME directory URL to assume where the tool's
	// state does not record it (lego keeps only the CA's host and port;
	// dehydrated's certificates name no CA). Empty reads it from the state
	// where possible and reports entries for which it cannot.
	DirectoryURL string

	// Roots are the roots an imported certificate's chain must verify
	// against (for TLS server authentication, with the chain's other
	// certificates as intermediates). Nil means the system's roots.
	Roots *x509.CertPool
}

// Account is an ACME account found in a tool's state.
type Account struct {
	// DirectoryURL is the CA's directory.
	DirectoryURL string
	// Email is the account's contact address, or "" for none.
	Email string
	// Location is the account URL at the CA.
	Location string
	// KeyPEM is the account's private key, PKCS#8 PEM.
	KeyPEM []byte
	// Source is the file or directory it was read from.
	Source string
}

// Certificate is a certificate and its key found in a tool's state.
type Certificate struct {
	// DirectoryURL is the directory of the CA that issued it.
	DirectoryURL string
	// Names are the normalised names it covers, the tool's primary name
	// first.
	Names []string
	// ChainPEM is the chain, leaf first; KeyPEM its key (PKCS#8 PEM).
	ChainPEM, KeyPEM []byte
	// Leaf is the parsed leaf.
	Leaf *x509.Certificate
	// Email and Account name the ACME account that ordered it, where the
	// tool records it.
	Email, Account string
	// URL is the ACME certificate URL, where known.
	URL string
	// Source is the file or directory it was read from.
	Source string
	// Settings are the tool's settings for it that Import does not carry
	// over (certbot's hooks and authenticator).
	Settings []Setting
}

// Setting is a setting of the tool that Import does not carry over — a
// hook, how the tool answered challenges — and what to give certkeeper
// instead, so that an operator who reads the import's table does not lose
// the reload of a web server after renewals without a word.
type Setting struct {
	// Source is the file it was read from.
	Source string
	// Setting is how the tool spells it: `renew_hook = systemctl reload nginx`.
	Setting string
	// Instead is what to give certkeeper instead:
	// `cert renew --deploy-hook 'systemctl reload nginx'`.
	Instead string
}

// Problem is an entry that cannot be imported, and why.
type Problem struct {
	// Source is the file or directory of the entry.
	Source string
	// Err says why.
	Err error
}

// State is what Read found in one tool's directory.
type State struct {
	Tool         string
	Dir          string
	Accounts     []Account
	Certificates []Certificate
	Problems     []Problem
	// Settings are the tool's settings not carried over that belong to no
	// one certificate (certbot's renewal-hooks/ scripts).
	Settings []Setting

	fsys  fs.FS          // Dir, read only through readFile
	roots *x509.CertPool // Options.Roots
}

// ErrUnknownTool is returned by Read and CheckTool for a tool they do not
// know.
var ErrUnknownTool = errors.New("unknown tool")

// CheckTool returns an error if Read does not know tool, saying which it
// knows: one wrapping ErrUnknownTool for a name, one asking for a tool
// (--from) for "".
func CheckTool(tool string) error {
	switch {
	case tool == "":
		return fmt.Errorf("--from is required: one of %s", strings.Join(Tools(), ", "))
	case !slices.Contains(Tools(), tool):
		return fmt.Errorf("%w %q: use one of %s", ErrUnknownTool, tool, strings.Join(Tools(), ", "))
	}
	return nil
}

// Read reads the state tool keeps in dir. A damaged entry becomes a
// Problem; an error means dir itself could not be read.
//
// Read reads only regular files inside dir, following symbolic links only
// while they stay inside it, and at most 1 MiB of each: a file that is a
// FIFO, a device, a link out of dir or larger is a Problem naming it.
func Read(tool, dir string, opts Options) (*State, error) {
	if err := CheckTool(tool); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("reading %s state: %w", tool, err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("reading %s state: %w", tool, err)
	}
	defer root.Close()
	return read(tool, abs, dirFS{root}, opts)
}

// read reads tool's state from fsys, the files of the directory dir
// (an absolute path, for messages and for the absolute paths certbot
// records).
func read(tool, dir string, fsys fs.FS, opts Options) (*State, error) {
	s := &State{Tool: tool, Dir: dir, fsys: fsys, roots: opts.Roots}
	var err error
	switch tool {
	case Certbot:
		err = readCertbot(s, opts)
	case Lego:
		err = readLego(s, opts)
	case ACMESH:
		err = readACMESH(s, opts)
	case Dehydrated:
		err = readDehydrated(s, opts)
	case Caddy:
		err = readCaddy(s, opts)
	default:
		return nil, fmt.Errorf("%w %q: use one of %s", ErrUnknownTool, tool, strings.Join(Tools(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s state in %s: %w", tool, dir, err)
	}
	return s, nil
}

func (s *State) problem(source string, format string, args ...any) {
	s.Problems = append(s.Problems, Problem{Source: source, Err: fmt.Errorf(format, args...)})
}

// addAccount checks an account and keeps it, or records why not; it
// returns the account kept. keyFile is the file its key was read from, for
// messages.
func (s *State) addAccount(a Account, keyPEM []byte, keyFile string) (Account, bool) {
	if a.DirectoryURL == "" {
		s.problem(a.Source, "the CA's directory URL is not recorded: give --ca URL")
		return a, false
	}
	if a.Location == "" {
		s.problem(a.Source, "no account URL recorded (the account was never registered?)")
		return a, false
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		s.problem(a.Source, "account key %s: %w", keyFile, err)
		return a, false
	}
	if a.KeyPEM, err = storage.MarshalPrivateKeyPEM(key); err != nil {
		s.problem(a.Source, "account key %s: %w", keyFile, err)
		return a, false
	}
	a.Email = strings.ToLower(a.Email)
	s.Accounts = append(s.Accounts, a)
	return a, true
}

// addAccountFile is addAccount with the key read from keyFile.
func (s *State) addAccountFile(a Account, keyFile string) (Account, bool) {
	keyPEM, err := readFile(s.fsys, keyFile)
	if err != nil {
		s.problem(a.Source, "account key: %w", err)
		return a, false
	}
	return s.addAccount(a, keyPEM, keyFile)
}

// addCertificate checks a certificate (key matches the leaf, the chain
// verifies, names normalise) and keeps it, or records why not. primary is
// the tool's name for it, put first among the names if the certificate
// covers it; certFile and keyFile are the files its leaf and key were read
// from, for messages.
func (s *State) addCertificate(c Certificate, primary string, keyPEM []byte, certFile, keyFile string) {
	if c.DirectoryURL == "" {
		s.problem(c.Source, "the CA's directory URL is not recorded: give --ca URL")
		return
	}
	if len(c.ChainPEM) == 0 {
		s.problem(c.Source, "no certificate")
		return
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		s.problem(c.Source, "private key %s: %w", keyFile, err)
		return
	}
	if c.KeyPEM, err = storage.MarshalPrivateKeyPEM(key); err != nil {
		s.problem(c.Source, "private key %s: %w", keyFile, err)
		return
	}
	tc, err := tls.X509KeyPair(c.ChainPEM, c.KeyPEM)
	if err != nil {
		s.problem(c.Source, "certificate and key: %w", err)
		return
	}
	c.Leaf = tc.Leaf
	if err := verifyChain(c.Leaf, tc.Certificate[1:], s.roots); err != nil {
		s.problem(c.Source, "%s: the certificate does not verify against the trusted roots (the system's, --chain-roots, the local CA's): %w",
			certFile, err)
		return
	}
	if c.Names, err = leafNames(c.Leaf, primary); err != nil {
		s.problem(c.Source, "%w", err)
		return
	}
	c.Email = strings.ToLower(c.Email)
	s.Certificates = append(s.Certificates, c)
}

// verifyChain checks that leaf, with the intermediates (DER) the tool
// keeps beside it, chains to one of roots (nil: the system's) for TLS
// server authentication. An expired leaf is checked at its expiry, so that
// Import reports it as expired rather than as untrusted.
func verifyChain(leaf *x509.Certificate, intermediates [][]byte, roots *x509.CertPool) error {
	pool := x509.NewCertPool()
	for _, der := range intermediates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("certificate after the leaf: %w", err)
		}
		pool.AddCert(c)
	}
	at := time.Now()
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// leafNames returns the normalised names leaf covers, primary first when
// it is one of them.
func leafNames(leaf *x509.Certificate, primary string) ([]string, error) {
	n := hostname.Normalizer{AllowIP: true, AllowWildcard: true}
	var names []string
	add := func(raw string) error {
		name, err := n.Normalize(raw)
		if err != nil {
			return fmt.Errorf("certificate name %q: %w", raw, err)
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
		return nil
	}
	for _, d := range leaf.DNSNames {
		if err := add(d); err != nil {
			return nil, err
		}
	}
	for _, ip := range leaf.IPAddresses {
		if err := add(ip.String()); err != nil {
			return nil, err
		}
	}
	if len(names) == 0 {
		return nil, errors.New("the certificate names no DNS name or IP address")
	}
	if p, err := n.Normalize(primary); err == nil {
		if i := slices.Index(names, p); i > 0 {
			names = append([]string{p}, slices.Delete(names, i, i+1)...)
		}
	}
	return names, nil
}

// joinPEM joins a leaf file and a chain file into one chain.
func joinPEM(leaf, chain []byte) []byte {
	out := strings.TrimRight(string(leaf), "\n") + "\n"
	if c := strings.TrimSpace(string(chain)); c != "" {
		out += c + "\n"
	}
	return []byte(out)
}

// emailOf returns the first mailto: contact, without the scheme.
func emailOf(contact []string) string {
	for _, c := range contact {
		if e, ok := strings.CutPrefix(c, "mailto:"); ok {
			return e
		}
	}
	return ""
}

// hostOf returns the host:port of a URL, or "" if it has none.
func hostOf(u string) string {
	rest, ok := strings.CutPrefix(u, "https://")
	if !ok {
		rest, _ = strings.CutPrefix(u, "http://")
	}
	host, _, _ := strings.Cut(rest, "/")
	return host
}

// hostName returns the host of a URL without its port.
func hostName(u string) string {
	h := hostOf(u)
	if name, _, err := net.SplitHostPort(h); err == nil {
		return name
	}
	return h
}

// knownDirectories are the directory URLs of well-known CAs, by host, for
// tools that record only the host.
var knownDirectories = map[string]string{
	"acme-v02.api.letsencrypt.org":         "https://acme-v02.api.letsencrypt.org/directory",
	"acme-staging-v02.api.letsencrypt.org": "https://acme-staging-v02.api.letsencrypt.org/directory",
	"acme.zerossl.com":                     "https://acme.zerossl.com/v2/DV90",
	"dv.acme-v02.api.pki.goog":             "https://dv.acme-v02.api.pki.goog/directory",
	"api.buypass.com":                      "https://api.buypass.com/acme/directory",
}

// parsePEMKeyOrJWK parses a PEM private key, or the JSON Web Key certbot
// keeps its account key in, and returns it as PEM.
func parsePEMKeyOrJWK(data []byte) ([]byte, error) {
	if block, _ := pem.Decode(data); block != nil {
		return data, nil
	}
	key, err := parseJWK(data)
	if err != nil {
		return nil, err
	}
	return storage.MarshalPrivateKeyPEM(key)
}

// maxKeyDER bounds the DER of a private key: an RSA key of 16384 bits,
// more than any CA accepts, is under 10 KiB. Parsing a key validates it,
// which for a larger RSA modulus takes time growing with its cube.
const maxKeyDER = 16 << 10

// parseKey parses the first private key among the PEM blocks of data,
// skipping the "EC PARAMETERS" block openssl ecparam writes before an EC
// key (as dehydrated's keys have).
func parseKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key (truncated or damaged file?)")
		}
		if block.Type == "EC PARAMETERS" {
			continue
		}
		if len(block.Bytes) > maxKeyDER {
			return nil, fmt.Errorf("the %s is %d bytes, larger than any key an ACME CA accepts (%d KiB): refusing to parse it",
				strings.ToLower(block.Type), len(block.Bytes), maxKeyDER>>10)
		}
		return storage.ParsePrivateKeyPEM(pem.EncodeToMemory(block))
	}
}
