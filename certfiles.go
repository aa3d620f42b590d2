package certkeeper

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/status"
)

// CertFile is a certificate obtained elsewhere (bought, or made by
// another tool) as two PEM files: the chain, leaf first, and its private
// key.
type CertFile struct {
	Cert string
	Key  string
}

// ParseCertFile parses "CERT:KEY", the command line's form of a CertFile.
func ParseCertFile(s string) (CertFile, error) {
	cert, key, ok := strings.Cut(s, ":")
	if !ok || cert == "" || key == "" {
		return CertFile{}, fmt.Errorf("certificate files %q: want CERT:KEY", s)
	}
	return CertFile{Cert: cert, Key: key}, nil
}

// CertFileStatus is the state of one of Manager.CertFiles, for status
// reports.
type CertFileStatus struct {
	CertFile
	Names    []string  `json:"names"`
	NotAfter time.Time `json:"not_after"`
	// State is "fine", "expiring" (status.IsExpiring for a certificate
	// nobody but its owner renews) or "expired".
	State string `json:"state"`
	// Err is the last failure to read the files again; the previous
	// certificate keeps serving meanwhile.
	Err string `json:"err,omitempty"`
}

// defaultCertFileCheck is how often CertFiles are checked for changes
// when Manager.CertFileCheck is zero.
const defaultCertFileCheck = 5 * time.Second

// manualCerts holds the certificates of Manager.CertFiles: served for
// the names they cover, never evicted, never renewed. RSA ones are apart,
// so that a name may have an ECDSA pair and an RSA pair (as nginx's two
// ssl_certificate lines), the RSA one served to clients that cannot use
// ECDSA.
type manualCerts struct {
	cache *certCache // every pair but RSA ones
	rsa   *certCache // RSA pairs
	mu    sync.Mutex // guards files
	files []*manualFile
}

// manualFile is one CertFile and what was last read from it.
type manualFile struct {
	CertFile
	stamp  string   // sizes and modification times of both files
	sum    [32]byte // of both files' contents
	entry  *managed
	err    error
	warned time.Time // last expiry warning
	// errWarned is when err was last logged: a failure is logged when
	// it first happens or changes, then once an hour while it lasts,
	// not at every check.
	errWarned time.Time
}

// get returns the pair CertFiles serve for name to the client of hello
// (nil: any client): the RSA one when the client cannot use ECDSA or no
// other pair covers name, else the other.
func (c *manualCerts) get(name string, hello *tls.ClientHelloInfo) *managed {
	if c.cache == nil {
		return nil
	}
	e, r := c.cache.get(name), c.rsa.get(name)
	if e == nil || r != nil && hello != nil && !supportsECDSA(hello) {
		return r
	}
	return e
}

// refill maps again the names another pair still covers after a reload
// took them from the pair that had them (b.test in a.test's pair and in
// c.test's, which was reloaded without it). Called with mu held.
func (c *manualCerts) refill() {
	for _, f := range c.files {
		if f.entry == nil {
			continue
		}
		if _, isRSA := f.entry.cert.Load().PrivateKey.(*rsa.PrivateKey); isRSA {
			c.rsa.fill(f.entry)
		} else {
			c.cache.fill(f.entry)
		}
	}
}

// init makes the two caches.
func (c *manualCerts) init() {
	c.cache, c.rsa = newCertCache(math.MaxInt), newCertCache(math.MaxInt)
}

// servedByCertFiles reports whether CertFiles serve every one of names.
func (m *Manager) servedByCertFiles(names []string) bool {
	for _, n := range names {
		if m.manual.get(n, nil) == nil {
			return false
		}
	}
	return true
}

func (m *Manager) certFileCheck() time.Duration {
	if m.CertFileCheck > 0 {
		return m.CertFileCheck
	}
	return defaultCertFileCheck
}

// initManual loads CertFiles (any unreadable one fails init) and starts
// watching them.
func (m *Manager) initManual() error {
	if len(m.CertFiles) == 0 {
		return nil
	}
	m.manual.init()
	for _, cf := range m.CertFiles {
		f := &manualFile{CertFile: cf}
		if _, err := m.reloadCertFile(f); err != nil {
			return err
		}
		m.manual.files = append(m.manual.files, f)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(m.certFileCheck())
		defer t.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-t.C:
				m.guard("reloading certificate files", slog.Attr{}, func() { m.checkCertFiles(time.Now()) })
			}
		}
	}()
	return nil
}

// checkCertFiles reloads changed files and warns about certificates near
// their expiry (once a day each).
func (m *Manager) checkCertFiles(now time.Time) {
	m.manual.mu.Lock()
	defer m.manual.mu.Unlock()
	for _, f := range m.manual.files {
		changed, err := m.reloadCertFile(f)
		prev := f.err
		f.err = err
		if err != nil {
			if prev == nil || prev.Error() != err.Error() || now.Sub(f.errWarned) >= time.Hour {
				f.errWarned = now
				m.logger().Warn("reading changed certificate files; still serving the previous certificate",
					slog.String("cert", f.Cert), slog.String("key_file", f.Key), slog.Any("err", err))
			}
			continue
		}
		if changed {
			m.manual.refill()
			leaf := f.entry.cert.Load().Leaf
			m.logger().Info("certificate files reloaded", slog.String("cert", f.Cert),
				slog.Any("names", f.entry.names), slog.Time("not_after", leaf.NotAfter))
		}
		if st := manualState(f.entry, now); st != "fine" && now.Sub(f.warned) > 24*time.Hour {
			f.warned = now
			m.logger().Warn("a certificate from files is "+st+"; replace its files", slog.String("cert", f.Cert),
				slog.Any("names", f.entry.names), slog.Time("not_after", f.entry.cert.Load().Leaf.NotAfter))
		}
	}
}

// reloadCertFile reads f's files if their sizes or times changed (or on
// first use) and, if their contents changed, parses and publishes them.
// A pair that does not parse (a half-written replacement, a key that does
// not match) leaves the previous certificate serving.
func (m *Manager) reloadCertFile(f *manualFile) (changed bool, err error) {
	stamp, err := fileStamp(f.Cert, f.Key)
	if err != nil {
		return false, err
	}
	if f.entry != nil && stamp == f.stamp {
		return false, nil
	}
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return false, fmt.Errorf("reading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return false, fmt.Errorf("reading key: %w", err)
	}
	sum := sha256.Sum256(append(append(bytes.Clone(certPEM), 0), keyPEM...))
	if f.entry != nil && sum == f.sum {
		f.stamp = stamp
		return false, nil
	}
	tc, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("certificate %s with key %s: %w", f.Cert, f.Key, err)
	}
	names := certNames(tc.Leaf.DNSNames, tc.Leaf.IPAddresses)
	if len(names) == 0 {
		return false, fmt.Errorf("certificate %s names no DNS name or IP address", f.Cert)
	}
	e := &managed{names: names, issuer: "file", key: f.Cert}
	e.cert.Store(&tc)
	if _, isRSA := tc.PrivateKey.(*rsa.PrivateKey); isRSA {
		m.manual.rsa.overlay(e)
	} else {
		m.manual.cache.overlay(e)
	}
	if f.entry != nil { // after the put, so the names are never without a pair; from either cache: the key's type may have changed
		m.manual.cache.remove(f.entry)
		m.manual.rsa.remove(f.entry)
	}
	f.entry, f.stamp, f.sum = e, stamp, sum
	return true, nil
}

// certNames normalises a certificate's SANs, skipping any that are not
// valid names.
func certNames[T fmt.Stringer](dns []string, ips []T) []string {
	n := hostname.Normalizer{AllowIP: true, AllowWildcard: true}
	var out []string
	add := func(s string) {
		if norm, err := n.Normalize(s); err == nil && !slices.Contains(out, norm) {
			out = append(out, norm)
		}
	}
	for _, d := range dns {
		add(d)
	}
	for _, ip := range ips {
		add(ip.String())
	}
	return out
}

func fileStamp(files ...string) (string, error) {
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

// manualState is "fine", "expiring" or "expired", by status.FileState.
func manualState(e *managed, now time.Time) string {
	leaf := e.cert.Load().Leaf
	return status.FileState(leaf.NotBefore, leaf.NotAfter, now)
}

// ReadCertFile reads cf's files and reports their certificate's state,
// as a Manager serving them would (for "certkeeper status").
func ReadCertFile(cf CertFile, now time.Time) (CertFileStatus, error) {
	f, err := readCertFile(cf)
	if err != nil {
		return CertFileStatus{}, err
	}
	return fileStatus(f, now), nil
}

// readCertFile reads cf's files as a Manager serving them would.
func readCertFile(cf CertFile) (*manualFile, error) {
	m := &Manager{}
	f := &manualFile{CertFile: cf}
	m.manual.init()
	_, err := m.reloadCertFile(f)
	return f, err
}

// fileStatus is f's certificate as CertFileStatus reports it.
func fileStatus(f *manualFile, now time.Time) CertFileStatus {
	s := CertFileStatus{CertFile: f.CertFile, Names: f.entry.names, NotAfter: f.entry.cert.Load().Leaf.NotAfter, State: manualState(f.entry, now)}
	if f.err != nil {
		s.Err = f.err.Error()
	}
	return s
}

// CertFileStatus reports the state of each of CertFiles.
func (m *Manager) CertFileStatus() []CertFileStatus {
	var out []CertFileStatus
	now := time.Now()
	m.eachCertFile(func(f *manualFile) { out = append(out, fileStatus(f, now)) })
	return out
}

// eachCertFile calls fn with each of CertFiles as served now, under the
// lock of their reloads.
func (m *Manager) eachCertFile(fn func(f *manualFile)) {
	if err := m.init(); err != nil {
		return
	}
	m.manual.mu.Lock()
	defer m.manual.mu.Unlock()
	for _, f := range m.manual.files {
		fn(f)
	}
}

// StatusOfCertFile reads the CERT:KEY pair spec (as ParseCertFile takes
// it) and returns it as an entry of "certkeeper status": issuer "file",
// keyed "file:" and the certificate's path, damaged (with the error) when
// the files cannot be read. The error is for a spec that does not parse.
func StatusOfCertFile(spec string, now time.Time) (status.Cert, error) {
	cf, err := ParseCertFile(spec)
	if err != nil {
		return status.Cert{}, err
	}
	f, err := readCertFile(cf)
	if err != nil {
		return status.Cert{Issuer: "file", State: status.Damaged, LastError: err.Error(), Key: "file:" + cf.Cert}, nil
	}
	return fileEntry(f, now), nil
}

// fileEntry is f's certificate as an entry of "certkeeper status".
func fileEntry(f *manualFile, now time.Time) status.Cert {
	leaf := f.entry.cert.Load().Leaf
	s := status.Cert{Names: slices.Clone(f.entry.names), Issuer: "file", NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		State: manualState(f.entry, now), Key: "file:" + f.Cert}
	if f.err != nil { // a failure to read the files again: the previous certificate serves
		s.LastError = f.err.Error()
	}
	return s
}

// StatusOfCertFiles returns CertFiles as entries of "certkeeper status",
// as StatusOfCertFile reads each from its files: issuer "file", keyed
// "file:" and the certificate's path, the state by status.FileState. The
// status page, /status.json, the alerts and the metrics of a running
// front-end list them beside the stored certificates. Each is the
// certificate being served; a failure to read its files again since (the
// previous certificate keeps serving) is its LastError.
func (m *Manager) StatusOfCertFiles(now time.Time) []status.Cert {
	var out []status.Cert
	m.eachCertFile(func(f *manualFile) { out = append(out, fileEntry(f, now)) })
	return out
}
