package migrate

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"strings"
)

// acme.sh keeps (in ~/.acme.sh, or its --config-home):
//
//	NAME/ or NAME_ecc/ (ECDSA)   NAME.conf (Le_Domain, Le_Alt, Le_API = the
//	                             directory URL, Le_LinkCert), NAME.cer (leaf),
//	                             ca.cer (chain), fullchain.cer, NAME.key
//	ca/HOST/PATH/account.key     the account key for directory https://HOST[:PORT]/PATH
//	ca/HOST/PATH/ca.conf         ACCOUNT_URL='...', CA_EMAIL='...'
//	account.conf                 ACCOUNT_EMAIL='...' (the default contact)
//
// acme.sh drops the port from HOST, so accounts are found through the
// directory URL (Le_API) of the certificates, or Options.DirectoryURL.

func readACMESH(s *State, opts Options) error {
	accounts := &acmeshAccounts{s: s, byURL: map[string]*Account{}}
	if data, err := readFileIfExists(s.fsys, "account.conf"); err != nil {
		s.problem("account.conf", "%w", err)
	} else {
		accounts.defaultEmail = parseShellVars(data)["ACCOUNT_EMAIL"]
	}
	if opts.DirectoryURL != "" {
		if _, err := acmeshCADir(opts.DirectoryURL); err != nil {
			return fmt.Errorf("--ca %s: %w", opts.DirectoryURL, err)
		}
		accounts.get(opts.DirectoryURL)
	}
	for _, d := range subdirs(s.fsys, ".") {
		readACMESHCert(s, opts, d, accounts)
	}
	return nil
}

// acmeshAccounts finds and adds acme.sh's accounts, each once.
type acmeshAccounts struct {
	s            *State
	defaultEmail string              // account.conf's ACCOUNT_EMAIL
	byURL        map[string]*Account // by directory URL; nil: tried and failed
}

// get returns the account for the directory URL dirURL, adding it to the
// state the first time, or nil if there is none.
func (aa *acmeshAccounts) get(dirURL string) *Account {
	if a, ok := aa.byURL[dirURL]; ok {
		return a
	}
	aa.byURL[dirURL] = nil
	s := aa.s
	caDir, err := acmeshCADir(dirURL)
	if err != nil {
		return nil
	}
	keyFile := path.Join(caDir, "account.key")
	if _, err := fs.Stat(s.fsys, keyFile); err != nil {
		// acme.sh before 2.8.2 kept one account per host: ca/HOST/.
		caDir = path.Dir(caDir)
		if keyFile = path.Join(caDir, "account.key"); !strings.HasPrefix(caDir, "ca/") {
			return nil
		}
		if _, err := fs.Stat(s.fsys, keyFile); err != nil {
			return nil
		}
	}
	a := Account{DirectoryURL: dirURL, Email: aa.defaultEmail, Source: caDir}
	data, err := readFileIfExists(s.fsys, path.Join(caDir, "ca.conf"))
	if err != nil {
		s.problem(a.Source, "%w", err)
		return nil
	}
	kv := parseShellVars(data)
	a.Location = kv["ACCOUNT_URL"]
	if e := kv["CA_EMAIL"]; e != "" {
		a.Email = e
	}
	found, ok := s.addAccountFile(a, keyFile)
	if !ok {
		return nil
	}
	aa.byURL[dirURL] = &found
	return &found
}

// readACMESHCert reads the certificate in folder d, if d is a certificate
// folder (NAME/ or NAME_ecc/ with NAME.conf).
func readACMESHCert(s *State, opts Options, d string, accounts *acmeshAccounts) {
	base := strings.TrimSuffix(d, "_ecc")
	conf := path.Join(d, base+".conf")
	data, err := readFile(s.fsys, conf)
	if errors.Is(err, fs.ErrNotExist) {
		return // not a certificate folder (ca/, deploy/, dnsapi/, ...)
	}
	c := Certificate{Source: d}
	if err != nil {
		s.problem(c.Source, "%w", err)
		return
	}
	kv := parseShellVars(data)
	c.Settings = acmeshSettings(conf, kv)
	c.DirectoryURL, c.URL = kv["Le_API"], kv["Le_LinkCert"]
	if c.DirectoryURL != "" {
		// Le_API names the account's folder: it must not lead out of ca/.
		if _, err := acmeshCADir(c.DirectoryURL); err != nil {
			s.problem(c.Source, "%s: Le_API %q is not a CA directory URL: %w", conf, c.DirectoryURL, err)
			return
		}
	}
	if opts.DirectoryURL != "" {
		if c.DirectoryURL != "" && c.DirectoryURL != opts.DirectoryURL {
			return
		}
		c.DirectoryURL = opts.DirectoryURL
	}
	if a := accounts.get(c.DirectoryURL); a != nil {
		c.Email, c.Account = a.Email, a.Location
	}
	certFile, keyFile := path.Join(d, base+".cer"), path.Join(d, base+".key")
	chainPEM, keyPEM, ok := s.readCertFiles(c.Source, certFile, path.Join(d, "ca.cer"), keyFile)
	if !ok {
		return
	}
	c.ChainPEM = chainPEM
	primary := kv["Le_Domain"]
	if primary == "" {
		primary = base
	}
	s.addCertificate(c, primary, keyPEM, certFile, keyFile)
}

// acmeshCADir is where acme.sh keeps the account for a directory URL:
// ca/HOST/PATH, HOST without its port. It refuses a URL that would name a
// folder elsewhere: no host, or "..", "." or "\" in its host or path.
func acmeshCADir(dirURL string) (string, error) {
	u, err := url.Parse(dirURL)
	if err != nil {
		return "", err
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.Hostname() == "" {
		return "", errors.New("not an http(s) URL with a host")
	}
	host := u.Hostname()
	segments := strings.Split(strings.Trim(u.Path, "/"), "/")
	for _, seg := range append([]string{host}, segments...) {
		if seg == "." || seg == ".." || strings.ContainsAny(seg, "\\\x00") {
			return "", fmt.Errorf("its host or path has %q", seg)
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6, as acme.sh writes it
	}
	dir := path.Join("ca", host, strings.Trim(u.Path, "/"))
	if !fs.ValidPath(dir) {
		return "", errors.New("its host or path is not valid UTF-8")
	}
	return dir, nil
}

// acmeshSettings returns the settings of acme.sh's certificate
// configuration conf (parsed: kv) that are not carried over: what
// "acme.sh --install-cert" set up (the files the web server reads and the
// command that reloads it) and its hooks. Dropped silently, the server's
// files would stop being updated after the first renewal.
func acmeshSettings(conf string, kv map[string]string) []Setting {
	var out []Setting
	add := func(setting, instead string) {
		out = append(out, Setting{Source: conf, Setting: setting, Instead: instead})
	}
	var copies []string
	for _, f := range []struct{ key, env string }{
		{"Le_RealCertPath", "CERTKEEPER_CERT_FILE"}, {"Le_RealFullChainPath", "CERTKEEPER_CERT_FILE"},
		{"Le_RealKeyPath", "CERTKEEPER_KEY_FILE"}, {"Le_RealCACertPath", ""},
	} {
		p := acmeshValue(kv[f.key])
		if p == "" {
			continue
		}
		what := "the chain (leaf first) is certs/NAME.pem in --out-dir"
		if f.env != "" {
			copies = append(copies, "cp \"$"+f.env+"\" "+shellQuote(p))
			what = ""
		}
		add(f.key+" = "+p, cmp.Or(what, "point the server at --out-dir's files, or copy them there in the deploy hook (below)"))
	}
	reload := acmeshValue(kv["Le_ReloadCmd"])
	if len(copies) > 0 || reload != "" {
		hook := strings.Join(append(copies, reload), " && ")
		hook = strings.TrimSuffix(hook, " && ")
		setting := "Le_ReloadCmd = " + reload
		if reload == "" {
			setting = "acme.sh --install-cert paths"
		}
		add(setting, "cert renew --deploy-hook "+shellQuote(hook))
	}
	for _, h := range []struct{ key, flag string }{{"Le_PreHook", "--pre-hook"}, {"Le_RenewHook", "--deploy-hook"}, {"Le_PostHook", "--post-hook"}} {
		if cmd := acmeshValue(kv[h.key]); cmd != "" {
			add(h.key+" = "+cmd, "cert renew "+h.flag+" "+shellQuote(cmd))
		}
	}
	if w := acmeshValue(kv["Le_Webroot"]); w != "" && w != "no" {
		switch w {
		case "standalone", "alpn", "dns":
		default:
			if !strings.HasPrefix(w, "dns_") {
				add("Le_Webroot = "+w, "cert renew --webroot "+shellQuote(w))
			}
		}
	}
	return out
}

// acmeshValue is a value of acme.sh's configuration as it meant it: the
// commands it stores base64-encoded between __ACME_BASE64__START_ and
// __ACME_BASE64__END_ decoded; a value that does not decode is left as
// it is.
func acmeshValue(v string) string {
	const start, end = "__ACME_BASE64__START_", "__ACME_BASE64__END_"
	if inner, ok := strings.CutPrefix(v, start); ok {
		if inner, ok = strings.CutSuffix(inner, end); ok {
			if b, err := base64.StdEncoding.DecodeString(inner); err == nil {
				return string(b)
			}
		}
	}
	return v
}
