package renew

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/internal/atomicfile"
	"github.com/certkeeper/certkeeper/internal/fileowner"
	"github.com/certkeeper/certkeeper/issuer"
)

// Settings are how one certificate was issued, remembered beside its
// files so that its renewals use the same CA, challenge and hooks, as
// certbot's renewal files do (issue 17). Every value is kept as the
// command line spells it ("tls-alpn-01", "127.0.0.1:443", "2m"); the empty
// string means "not set": the default of the program that renews.
//
// Settings never hold a secret: DNS credentials are named by the files
// that hold them (TSIGKeyFile, DNSAPIKeyFile). They hold hooks, commands
// that a renewal runs, so they live in a local file that only its owner
// may write (see LoadSettings), never in shared storage.
type Settings struct {
	CA             string // ca: an ACME directory URL, letsencrypt, staging or local
	CARoots        string // ca_roots: PEM file of roots for the CA's HTTPS endpoint
	Email          string // email: the ACME account's contact
	Profile        string // profile: the ACME profile to order
	KeyType        string // key_type: ecdsa-p256, rsa2048, ... (canonical: see Set)
	PreferredChain string // preferred_chain: the common name of the preferred chain's top

	// Storage is where the certificate's ACME account (and, for the local
	// CA, the CA itself) lives: a renewal with another storage would
	// register another account, or sign with a new local CA that no client
	// trusts. StorageKeyFile and StoragePasswordFile open it.
	Storage             string // storage: a directory or a storage URL
	StorageKeyFile      string // storage_key_file
	StoragePasswordFile string // storage_password_file

	Challenge string // challenge: http-01, tls-alpn-01, dns-01 or dns-persist-01
	HTTPAddr  string // http_addr: where http-01 is answered
	Webroot   string // webroot: the web server's document root http-01 is answered through
	TLSAddr   string // tls_alpn_addr (tls_addr in older files): where tls-alpn-01 is answered

	DNS           string   // dns: the DNS provider (rfc2136, powerdns, exec)
	DNSServer     string   // dns_server
	TSIGKeyFile   string   // tsig_key_file
	DNSExec       string   // dns_exec
	DNSExecMode   string   // dns_exec_mode
	DNSAPIURL     string   // dns_api_url
	DNSAPIKeyFile string   // dns_api_key_file
	DNSResolvers  []string // dns_resolver, one line each
	DNSZones      []string // dns_zone, one line each
	// DNSSettings and DNSSettingFiles are a compiled-in provider's
	// settings (package dnsprovider), NAME=VALUE and NAME=FILE, one line
	// each; secret ones only ever by file.
	DNSSettings     []string // dns_setting
	DNSSettingFiles []string // dns_setting_file
	DNSCheckPort    string   // dns_check_port
	DNSTimeout      string   // dns_timeout
	DNSNoCheck      string   // dns_no_check: "true" or "false"

	DeployHook string // deploy_hook: run after the certificate is renewed
	PreHook    string // pre_hook: run once per run, before the first renewal that has it
	PostHook   string // post_hook: run once per run, after a run that renewed with it

	// Revoked is the reason the current certificate was revoked with
	// (MarkRevoked; cert revoke writes it): it is renewed at the next run,
	// due or not, with a new key after keyCompromise, and the mark is
	// cleared then. No flag sets it.
	Revoked string // revoked
}

// settingsVersion is the format's version, the file's "version" line.
const settingsVersion = "1"

// field is one key of the format and the Settings field it sets.
type field struct {
	key    string
	scalar func(s *Settings) *string   // nil for a list
	list   func(s *Settings) *[]string // nil for a scalar
}

// fields lists the keys in the order files are written.
var fields = []field{
	{key: "ca", scalar: func(s *Settings) *string { return &s.CA }},
	{key: "ca_roots", scalar: func(s *Settings) *string { return &s.CARoots }},
	{key: "email", scalar: func(s *Settings) *string { return &s.Email }},
	{key: "profile", scalar: func(s *Settings) *string { return &s.Profile }},
	{key: "key_type", scalar: func(s *Settings) *string { return &s.KeyType }},
	{key: "preferred_chain", scalar: func(s *Settings) *string { return &s.PreferredChain }},
	{key: "storage", scalar: func(s *Settings) *string { return &s.Storage }},
	{key: "storage_key_file", scalar: func(s *Settings) *string { return &s.StorageKeyFile }},
	{key: "storage_password_file", scalar: func(s *Settings) *string { return &s.StoragePasswordFile }},
	{key: "challenge", scalar: func(s *Settings) *string { return &s.Challenge }},
	{key: "http_addr", scalar: func(s *Settings) *string { return &s.HTTPAddr }},
	{key: "webroot", scalar: func(s *Settings) *string { return &s.Webroot }},
	{key: "tls_alpn_addr", scalar: func(s *Settings) *string { return &s.TLSAddr }},
	{key: "dns", scalar: func(s *Settings) *string { return &s.DNS }},
	{key: "dns_server", scalar: func(s *Settings) *string { return &s.DNSServer }},
	{key: "tsig_key_file", scalar: func(s *Settings) *string { return &s.TSIGKeyFile }},
	{key: "dns_exec", scalar: func(s *Settings) *string { return &s.DNSExec }},
	{key: "dns_exec_mode", scalar: func(s *Settings) *string { return &s.DNSExecMode }},
	{key: "dns_api_url", scalar: func(s *Settings) *string { return &s.DNSAPIURL }},
	{key: "dns_api_key_file", scalar: func(s *Settings) *string { return &s.DNSAPIKeyFile }},
	{key: "dns_resolver", list: func(s *Settings) *[]string { return &s.DNSResolvers }},
	{key: "dns_zone", list: func(s *Settings) *[]string { return &s.DNSZones }},
	{key: "dns_setting", list: func(s *Settings) *[]string { return &s.DNSSettings }},
	{key: "dns_setting_file", list: func(s *Settings) *[]string { return &s.DNSSettingFiles }},
	{key: "dns_check_port", scalar: func(s *Settings) *string { return &s.DNSCheckPort }},
	{key: "dns_timeout", scalar: func(s *Settings) *string { return &s.DNSTimeout }},
	{key: "dns_no_check", scalar: func(s *Settings) *string { return &s.DNSNoCheck }},
	{key: "deploy_hook", scalar: func(s *Settings) *string { return &s.DeployHook }},
	{key: "pre_hook", scalar: func(s *Settings) *string { return &s.PreHook }},
	{key: "post_hook", scalar: func(s *Settings) *string { return &s.PostHook }},
	{key: "revoked", scalar: func(s *Settings) *string { return &s.Revoked }},
}

// secretKeys are keys a renewal file must never hold, with what to use
// instead.
var secretKeys = map[string]string{
	"tsig_key":    "name the file that holds it with tsig_key_file",
	"dns_api_key": "name the file that holds it with dns_api_key_file",
	"eab_hmac":    "the ACME account is registered already; renewals need no EAB key",
}

// renamedKeys are keys older files may hold, and the key each now is.
var renamedKeys = map[string]string{"tls_addr": "tls_alpn_addr"}

// SettingsKeys returns the keys of the format, in the order files are
// written. A command line maps its flags to them ("tls_alpn_addr" is
// --tls-alpn-addr).
func SettingsKeys() []string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys
}

func lookupField(key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// Set sets the value of key (one of SettingsKeys); for a list key it adds
// value to the list. A value may not hold a line break. A key_type is set
// in its canonical spelling (issuer.ParseKeyType: certbot's "ecdsa" and
// "secp384r1", lego's "ec384" are "ecdsa-p256" and "ecdsa-p384"), so
// that settings given in another tool's spelling, or read from a file
// that holds one, compare equal to the same settings spelt canonically;
// a value ParseKeyType refuses is kept as it is, for the issuance to
// refuse with its reason.
func (s *Settings) Set(key, value string) error {
	f, ok := lookupField(key)
	if !ok {
		if why, secret := secretKeys[key]; secret {
			return fmt.Errorf("%s is a secret and is never kept in renewal settings: %s", key, why)
		}
		return fmt.Errorf("unknown renewal setting %q (known: %s)", key, strings.Join(SettingsKeys(), ", "))
	}
	if strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("renewal setting %s: the value holds a line break", key)
	}
	if key == "key_type" {
		value = canonicalKeyType(value)
	}
	if key == "storage" {
		value = withoutPassword(value) // a secret is never kept: give --storage again
	}
	if f.list != nil {
		*f.list(s) = append(*f.list(s), value)
	} else {
		*f.scalar(s) = value
	}
	return nil
}

// withoutPassword is a storage URL without the password it may hold
// (redis://:PASSWORD@host), or v as it is.
func withoutPassword(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return v
	}
	if _, has := u.User.Password(); !has {
		return v
	}
	if u.User = url.User(u.User.Username()); u.User.Username() == "" {
		u.User = nil
	}
	return u.String()
}

// canonicalKeyType is the canonical spelling of the key type v, or v
// itself when it is empty or no key type.
func canonicalKeyType(v string) string {
	if k, err := issuer.ParseKeyType(v); v != "" && err == nil {
		return string(k)
	}
	return v
}

// Values calls fn for every key that is set, in the order files are
// written: once per item of a list.
func (s *Settings) Values(fn func(key, value string)) {
	for _, f := range fields {
		if f.list != nil {
			for _, v := range *f.list(s) {
				fn(f.key, v)
			}
		} else if v := *f.scalar(s); v != "" {
			fn(f.key, v)
		}
	}
}

// Override lays the values set in o over s: a scalar set in o replaces
// the one in s, and a list set in o replaces the whole list.
func (s *Settings) Override(o Settings) {
	for _, f := range fields {
		if f.list != nil {
			if l := *f.list(&o); len(l) > 0 {
				*f.list(s) = append([]string(nil), l...)
			}
		} else if v := *f.scalar(&o); v != "" {
			*f.scalar(s) = v
		}
	}
}

// CertificateKeys are the settings that make the certificate a run
// orders: its CA (and the roots to reach it), its account (email, and the
// storage that holds it), its key and its chain. The others say how it is
// validated and deployed, which a run may change for the next renewals
// without a new certificate (Kept).
func CertificateKeys() []string {
	return []string{"ca", "ca_roots", "email", "profile", "key_type", "preferred_chain", "storage", "storage_key_file", "storage_password_file"}
}

// with returns s with the values of the keys keep reports true for taken
// from o (a list key's whole list).
func (s Settings) with(o Settings, keep func(key string) bool) Settings {
	for _, f := range fields {
		switch {
		case !keep(f.key):
		case f.list != nil:
			*f.list(&s) = slices.Clone(*f.list(&o))
		default:
			*f.scalar(&s) = *f.scalar(&o)
		}
	}
	return s
}

// Paths returns the settings of s that name a file or directory of this
// host that issuing reads (ca_roots, webroot, tsig_key_file, dns_exec,
// dns_api_key_file), by key; the storage's are opened before, with the
// storage. A remembered path that is gone is said as remembered, not as
// a flag the command line never gave (a DNS trial).
func (s Settings) Paths() map[string]string {
	out := map[string]string{}
	for k, v := range map[string]string{"ca_roots": s.CARoots, "webroot": s.Webroot, "tsig_key_file": s.TSIGKeyFile,
		"dns_exec": s.DNSExec, "dns_api_key_file": s.DNSAPIKeyFile} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// IsZero reports whether no setting is set.
func (s Settings) IsZero() bool {
	zero := true
	s.Values(func(string, string) { zero = false })
	return zero
}

// issuerKey identifies the settings an issuer is built from: all but the
// hooks. Certificates with equal keys share one issuer chain in a run.
func (s Settings) issuerKey() string {
	s.DeployHook, s.PreHook, s.PostHook, s.Revoked = "", "", "", ""
	b, _ := s.MarshalText()
	return string(b)
}

// MarshalText writes s in the renewal file format: a comment line, then
// "version = 1", then one "key = value" line per value set, in the order
// of SettingsKeys (a list key repeats, one line per item).
func (s Settings) MarshalText() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# certkeeper renewal settings: read and rewritten by certkeeper cert renew (see docs/cli.md)\n")
	b.WriteString("version = " + settingsVersion + "\n")
	var err error
	s.Values(func(key, value string) {
		if strings.ContainsAny(value, "\r\n") {
			err = errors.Join(err, fmt.Errorf("renewal setting %s: the value holds a line break", key))
		}
		fmt.Fprintf(&b, "%s = %s\n", key, value)
	})
	if err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ParseSettings reads the renewal file format: one "key = value" per
// line, the key one of SettingsKeys or "version" (which must be 1),
// surrounding spaces trimmed; blank lines and lines starting with # are
// skipped. A list key may repeat; any other key may not. An error names
// the line.
func ParseSettings(rd io.Reader) (Settings, error) {
	var s Settings
	seen := map[string]bool{}
	sc := bufio.NewScanner(rd)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return Settings{}, fmt.Errorf("line %d: want key = value, got %q", line, text)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if now, ok := renamedKeys[key]; ok {
			key = now // rewritten under its new name at the next save
		}
		if key == "version" {
			if value != settingsVersion {
				return Settings{}, fmt.Errorf("line %d: version %q: this certkeeper reads version %s; upgrade certkeeper", line, value, settingsVersion)
			}
			continue
		}
		if f, ok := lookupField(key); ok && f.list == nil && seen[key] {
			return Settings{}, fmt.Errorf("line %d: %s given twice", line, key)
		}
		seen[key] = true
		if err := s.Set(key, value); err != nil {
			return Settings{}, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// SettingsPath returns where the settings of the certificate whose files
// are named for name are kept: DIR/renewal/BASE.conf, BASE being the base
// of its files (certfile.Pair.Base).
func SettingsPath(dir certfile.Dir, name string) (string, error) {
	p, err := dir.Paths(name)
	if err != nil {
		return "", err
	}
	return settingsPathBase(dir, p.Base()), nil
}

func settingsPathBase(dir certfile.Dir, base string) string {
	return filepath.Join(string(dir), "renewal", base+".conf")
}

// LoadSettings reads a renewal file. An absent file is an error for which
// errors.Is(err, fs.ErrNotExist) holds. Because the file names commands
// to run, it is refused unless it is a regular file owned by the user
// running this process that neither its group nor others may
// write; the error names the file and the chmod or chown that fixes it.
func LoadSettings(path string) (Settings, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Settings{}, fmt.Errorf("renewal settings: %w", err)
	}
	// Its directory too: another user's could have had a file of the
	// right owner and mode renamed into it (a security trial).
	if err := certfile.OwnedDir(filepath.Dir(path)); err != nil {
		return Settings{}, fmt.Errorf("renewal settings %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return Settings{}, fmt.Errorf("renewal settings %s: not a regular file (a symbolic link?); replace it with the file itself", path)
	}
	fh, err := os.Open(path)
	if err != nil {
		return Settings{}, fmt.Errorf("renewal settings: %w", err)
	}
	defer fh.Close()
	if fi, err = fh.Stat(); err != nil {
		return Settings{}, fmt.Errorf("renewal settings: %w", err)
	}
	if err := checkPrivate(path, fi); err != nil {
		return Settings{}, err
	}
	s, err := ParseSettings(fh)
	if err != nil {
		return Settings{}, fmt.Errorf("renewal settings %s: %w", path, err)
	}
	return s, nil
}

// checkPrivate refuses a file others could have written: its hooks would
// run as the user renewing.
func checkPrivate(path string, fi fs.FileInfo) error {
	if runtime.GOOS == "windows" {
		return nil // no POSIX modes; the directory's ACL protects it
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("renewal settings %s: refused, mode %04o lets its group or others write it, and its hooks run as this user: check its contents, then chmod 600 %s", path, perm, path)
	}
	if uid, ok := fileowner.UID(fi); ok && uid != os.Getuid() {
		return fmt.Errorf("renewal settings %s: refused, owned by uid %d, not by this user (uid %d), and its hooks run as this user: check its contents, then chown it", path, uid, os.Getuid())
	}
	return nil
}

// SaveSettings writes s to path atomically (a temporary file in the same
// directory, synced, renamed over the old one), mode 0600, creating its
// directory with mode 0700 where missing.
func SaveSettings(path string, s Settings) error {
	data, err := s.MarshalText()
	if err != nil {
		return fmt.Errorf("writing renewal settings %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("writing renewal settings %s: %w", path, err)
	}
	if certbots(path) {
		return fmt.Errorf("writing renewal settings %s: refused: it is certbot's renewal file (its [renewalparams]), so --out-dir is certbot's directory, whose lineage it would break: give certkeeper an --out-dir of its own", path)
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing renewal settings %s: %w", path, err)
	}
	return nil
}

// certbots reports whether the regular file at path is certbot's renewal
// configuration, which has the same name as certkeeper's settings file
// (OUT-DIR/renewal/NAME.conf): a migration trial's cert renew --out-dir
// /etc/letsencrypt replaced it, and certbot skipped that lineage from then
// on.
func certbots(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
		return false
	}
	data, err := os.ReadFile(path)
	return err == nil && bytes.Contains(data, []byte("\n[renewalparams]"))
}

// Absolute makes the settings that name files absolute, relative to the
// working directory: CARoots, Webroot, TSIGKeyFile, DNSAPIKeyFile, the FILE of
// each DNSSettingFiles entry (NAME=FILE), and DNSExec when it is a path
// ("./hook.sh", "bin/hook"; a bare "hook.sh" is looked up in $PATH, as
// exec does, and stays so). A renewal runs from cron, in another
// directory than the command that remembered them (trial 19). A path
// that cannot be made absolute is left as it is; empty ones stay empty.
func (s *Settings) Absolute() {
	for _, p := range []*string{&s.CARoots, &s.Webroot, &s.TSIGKeyFile, &s.DNSAPIKeyFile, &s.StorageKeyFile, &s.StoragePasswordFile} {
		if *p != "" {
			*p = absPath(*p)
		}
	}
	if s.Storage != "" && !strings.Contains(s.Storage, "://") { // a directory
		s.Storage = absPath(s.Storage)
	}
	if strings.ContainsRune(s.DNSExec, filepath.Separator) {
		s.DNSExec = absPath(s.DNSExec)
	}
	for i, entry := range s.DNSSettingFiles {
		if name, file, ok := strings.Cut(entry, "="); ok {
			s.DNSSettingFiles[i] = name + "=" + absPath(file)
		}
	}
}

// absPath is path made absolute, or path when that fails.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// MarkRevoked notes in the renewal settings of the pair whose certificate
// file is certFile (DIR/certs/NAME.pem) that its certificate was revoked
// for reason (an RFC 5280 name), so that the next Renewer run replaces it,
// due or not, and with a new key after keyCompromise. It reports whether
// certFile is such a pair's (a certificate file elsewhere is left alone).
func MarkRevoked(certFile, reason string) (bool, error) {
	path, ok := pairSettingsPath(certFile)
	if !ok {
		return false, nil
	}
	s, err := LoadSettings(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	s.Revoked = reason
	return true, SaveSettings(path, s)
}

// pairSettingsPath returns the renewal settings file of the pair whose
// certificate file is certFile (DIR/certs/NAME.pem beside
// DIR/private/NAME.key), and false when certFile is no such pair's (a
// certificate file elsewhere, or without its key: nothing to renew).
func pairSettingsPath(certFile string) (string, bool) {
	certs := filepath.Dir(certFile)
	name := strings.TrimSuffix(filepath.Base(certFile), ".pem")
	if filepath.Base(certs) != "certs" || name == filepath.Base(certFile) {
		return "", false
	}
	dir := certfile.Dir(filepath.Dir(certs))
	if _, err := os.Stat(filepath.Join(string(dir), "private", name+".key")); err != nil {
		return "", false
	}
	return settingsPathBase(dir, name), true
}

// PairSettings returns the remembered settings of the pair whose
// certificate file is certFile (DIR/certs/NAME.pem), and the file that
// holds them: what a command acting on that certificate alone (a
// revocation) needs to reach the CA that issued it, as a Renewer does.
// A certificate file of no pair, or a pair without settings, gives zero
// Settings and no file; a file that cannot be read is an error.
func PairSettings(certFile string) (s Settings, path string, err error) {
	path, ok := pairSettingsPath(certFile)
	if !ok {
		return Settings{}, "", nil
	}
	s, err = LoadSettings(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Settings{}, "", nil
	}
	if err != nil {
		return Settings{}, "", err
	}
	return s, path, nil
}

// StorageConflictError is RememberedStorage's error: certificates of one
// directory remember different storages, which one run cannot open.
type StorageConflictError struct {
	Dir certfile.Dir
	// ByStorage maps each storage remembered to the certificates (base
	// names) that remember it, sorted.
	ByStorage map[string][]string
}

func (e *StorageConflictError) Error() string {
	var parts []string
	for _, st := range slices.Sorted(maps.Keys(e.ByStorage)) {
		parts = append(parts, fmt.Sprintf("%s (%s)", st, strings.Join(e.ByStorage[st], ", ")))
	}
	return fmt.Sprintf("the certificates in %s remember different storages: %s", e.Dir, strings.Join(parts, "; "))
}

// RememberedStorage returns the storage settings (StorageKeys) that the
// certificates in dir remember, if any does: a run without a storage of
// its own opens that one, where their accounts (and local CA) are, not a
// default one. Certificates that remember none are renewed there too. It
// is a *StorageConflictError when they remember different storages, or
// the same storage with different key or password files. Settings that
// cannot be read are skipped: the run reports them. With names, only the
// certificates that cover or are named by one of them count (a run's
// Renewer.Only), unless none of those remembers a storage: then all do.
func RememberedStorage(dir certfile.Dir, names ...string) (Settings, error) {
	pairs, err := dir.Pairs()
	if err != nil {
		return Settings{}, nil // the run reports it
	}
	var found Settings
	by := map[string][]string{}
	for _, p := range pairs {
		covers := []string{p.Base}
		if p.Err == nil && len(p.Chain) > 0 {
			covers = certfile.Names(p.Chain[0], p.Base)
		}
		if len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool {
			kept, _ := only([]*Result{{Base: p.Base, Names: covers}}, []string{n}, dir)
			return len(kept) > 0
		}) {
			continue
		}
		s, err := LoadSettings(settingsPathBase(dir, p.Base))
		if err != nil || s.Storage == "" {
			continue
		}
		st := Settings{Storage: s.Storage, StorageKeyFile: s.StorageKeyFile, StoragePasswordFile: s.StoragePasswordFile}
		found = st
		desc := st.Storage
		if st.StorageKeyFile != "" || st.StoragePasswordFile != "" {
			desc += " with " + strings.TrimSpace(st.StorageKeyFile+" "+st.StoragePasswordFile)
		}
		by[desc] = append(by[desc], p.Base)
	}
	if len(names) > 0 && len(by) == 0 {
		// The names' certificates remember none (a want entry without
		// files yet, one written before storage was remembered): the
		// directory's others say where they are. A migration trial's
		// cert renew --want FILE -d NAME opened the default storage, and
		// ordered from a new account a certificate the imported storage
		// held.
		return RememberedStorage(dir)
	}
	if len(by) > 1 {
		for _, bases := range by {
			slices.Sort(bases)
		}
		return Settings{}, &StorageConflictError{Dir: dir, ByStorage: by}
	}
	return found, nil
}
