package migrate

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// certbot keeps (in its --config-dir, /etc/letsencrypt by default):
//
//	renewal/NAME.conf                    server = DIRECTORY_URL, account = ID, key paths
//	live/NAME/{cert,chain,fullchain,privkey}.pem   symlinks into archive/NAME/
//	accounts/HOST/PATH/ID/regr.json      {"body": {"contact": [...]}, "uri": ACCOUNT_URL}
//	accounts/HOST/PATH/ID/private_key.json   the account key as a JSON Web Key
//	renewal-hooks/{pre,deploy,post}/     scripts run around every renewal (certbothooks.go)

// certbotAccount is one account directory of certbot.
type certbotAccount struct {
	dir, directoryURL string
	acct              Account
	keyPEM            []byte
	keyFile           string
	err               error
}

func readCertbot(s *State, opts Options) error {
	accounts := certbotAccounts(s)
	seen := map[string]bool{} // account directories already added
	confs := filesIn(s.fsys, "renewal", ".conf")
	for _, conf := range confs {
		readCertbotRenewal(s, opts, conf, accounts, seen)
	}
	s.Settings = certbotHookScripts(s)
	if len(confs) > 0 {
		s.Settings = append(s.Settings, certbotTimer)
	}
	ids := make([]string, 0, len(accounts))
	for id := range accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		a := accounts[id]
		if seen[a.dir] {
			continue
		}
		if a.err != nil {
			s.problem(a.dir, "%w", a.err)
			continue
		}
		acct := a.acct
		if opts.DirectoryURL != "" {
			acct.DirectoryURL = opts.DirectoryURL
		}
		s.addAccount(acct, a.keyPEM, a.keyFile)
	}
	return nil
}

// certbotAccounts reads every account directory under accounts/, by
// account ID.
func certbotAccounts(s *State) map[string]*certbotAccount {
	accounts := map[string]*certbotAccount{}
	_ = fs.WalkDir(s.fsys, "accounts", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if _, err := fs.Stat(s.fsys, path.Join(p, "regr.json")); err != nil {
			return nil
		}
		// accounts/HOST/PATH.../ID: the directory URL is https://HOST/PATH.
		r := strings.TrimPrefix(strings.TrimPrefix(path.Dir(p), "accounts"), "/")
		a := &certbotAccount{dir: p, directoryURL: "https://" + r, keyFile: path.Join(p, "private_key.json")}
		a.acct, a.keyPEM, a.err = readCertbotAccount(s.fsys, p)
		a.acct.DirectoryURL = a.directoryURL
		accounts[path.Base(p)] = a
		return fs.SkipDir
	})
	return accounts
}

// readCertbotRenewal reads the certificate of one renewal configuration,
// conf, and adds the account it names (once: seen holds the account
// directories already added).
func readCertbotRenewal(s *State, opts Options, conf string, accounts map[string]*certbotAccount, seen map[string]bool) {
	name := strings.TrimSuffix(path.Base(conf), ".conf")
	data, err := readFile(s.fsys, conf)
	if err != nil {
		s.problem(conf, "reading renewal configuration: %w", err)
		return
	}
	kv, webrootMap := parseCertbotConfMap(data)
	c := Certificate{DirectoryURL: kv["server"], Source: conf, Settings: certbotSettings(conf, kv, webrootMap)}
	if c.DirectoryURL == "" {
		c.DirectoryURL = knownDirectories["acme-v02.api.letsencrypt.org"] // certbot's default server
	}
	if opts.DirectoryURL != "" {
		c.DirectoryURL = opts.DirectoryURL
	}
	if a := accounts[kv["account"]]; a != nil && a.err == nil {
		c.Email, c.Account = a.acct.Email, a.acct.Location
		if !seen[a.dir] {
			seen[a.dir] = true
			acct := a.acct
			if opts.DirectoryURL != "" {
				acct.DirectoryURL = opts.DirectoryURL
			} else if c.DirectoryURL != "" {
				acct.DirectoryURL = c.DirectoryURL // the exact URL, with scheme and port
			}
			s.addAccount(acct, a.keyPEM, a.keyFile)
		}
	}
	files, read := s.certbotFiles(name, kv)
	cert, err := read("cert", false)
	if err != nil {
		s.problem(c.Source, "certificate: %w", err)
		return
	}
	chain, err := read("chain", true)
	if err != nil {
		s.problem(c.Source, "chain: %w", err)
		return
	}
	keyPEM, err := read("privkey", false)
	if err != nil {
		s.problem(c.Source, "private key: %w", err)
		return
	}
	c.ChainPEM = joinPEM(cert, chain)
	s.addCertificate(c, name, keyPEM, files["cert"], files["privkey"])
}

// certbotFiles returns the files of certificate name ("cert", "chain",
// "privkey") and a func that reads one of them. They are the files the
// renewal configuration kv names, if they are inside the directory; else
// (a copy of /etc/letsencrypt elsewhere, or a path leading out of it)
// certbot's own links in live/NAME/, and a read error says so.
func (s *State) certbotFiles(name string, kv map[string]string) (map[string]string, func(k string, optional bool) ([]byte, error)) {
	files := map[string]string{}
	outside := map[string]string{}
	for _, k := range []string{"cert", "chain", "privkey"} {
		files[k] = path.Join("live", name, k+".pem")
		if p := kv[k]; p != "" {
			if r, ok := s.inside(p); ok {
				files[k] = r
			} else {
				outside[k] = p
			}
		}
	}
	read := func(k string, optional bool) ([]byte, error) {
		var data []byte
		var err error
		if optional {
			data, err = readFileIfExists(s.fsys, files[k])
		} else {
			data, err = readFile(s.fsys, files[k])
		}
		if err != nil && outside[k] != "" {
			err = fmt.Errorf("%s = %s is outside %s, so %s was read instead: %w", k, outside[k], s.Dir, files[k], err)
		}
		return data, err
	}
	return files, read
}

// inside returns the path of file (absolute, as certbot records it)
// relative to the state's directory, if it is inside it.
func (s *State) inside(file string) (string, bool) {
	if !filepath.IsAbs(file) {
		return "", false
	}
	r, err := filepath.Rel(s.Dir, filepath.Clean(file))
	if err != nil || r == "." || !filepath.IsLocal(r) {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// certbotRegr is certbot's regr.json: the account's registration.
type certbotRegr struct {
	Body struct {
		Contact []string `json:"contact"`
	} `json:"body"`
	URI string `json:"uri"`
}

func readCertbotAccount(fsys fs.FS, dir string) (Account, []byte, error) {
	a := Account{Source: dir}
	regrFile := path.Join(dir, "regr.json")
	data, err := readFile(fsys, regrFile)
	if err != nil {
		return a, nil, err
	}
	var regr certbotRegr
	if err := json.Unmarshal(data, &regr); err != nil {
		return a, nil, fmt.Errorf("%s: %w", regrFile, err)
	}
	a.Location, a.Email = regr.URI, emailOf(regr.Body.Contact)
	keyFile := path.Join(dir, "private_key.json")
	jwk, err := readFile(fsys, keyFile)
	if err != nil {
		return a, nil, err
	}
	keyPEM, err := parsePEMKeyOrJWK(jwk)
	if err != nil {
		return a, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	return a, keyPEM, nil
}

// parseCertbotConf parses the "key = value" lines of a renewal
// configuration (configobj format), ignoring sections, the lines of the
// [[webroot_map]] subsection and comments; the first of duplicate keys
// counts.
func parseCertbotConf(data []byte) map[string]string {
	kv, _ := parseCertbotConfMap(data)
	return kv
}

// parseCertbotConfMap is parseCertbotConf, also returning the
// [[webroot_map]] subsection (name = web root) of [renewalparams].
func parseCertbotConfMap(data []byte) (kv, webrootMap map[string]string) {
	kv, webrootMap = map[string]string{}, map[string]string{}
	inMap := false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			inMap = strings.Trim(line, "[] ") == "webroot_map"
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		m := kv
		if inMap {
			m = webrootMap
		}
		k = strings.TrimSpace(k)
		if _, dup := m[k]; !dup {
			m[k] = confValue(v)
		}
	}
	return kv, webrootMap
}

// confValue returns the value of a configobj line after its "=": the text
// between quotes if it starts with one, single, double or three of either
// (configobj quotes a value holding a quote, "#" or ","), else the text up
// to an inline comment.
func confValue(v string) string {
	v = strings.TrimSpace(v)
	for _, q := range []string{`"""`, "'''", `"`, "'"} {
		if rest, ok := strings.CutPrefix(v, q); ok {
			if inner, _, ok := strings.Cut(rest, q); ok {
				return inner
			}
			return rest
		}
	}
	v, _, _ = strings.Cut(v, "#")
	return strings.TrimSpace(v)
}
