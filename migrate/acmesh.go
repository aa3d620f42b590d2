package migrate

import (
	"os"
	"path/filepath"
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
	defaultEmail := ""
	if kv, err := readShellVars(filepath.Join(s.Dir, "account.conf")); err == nil {
		defaultEmail = kv["ACCOUNT_EMAIL"]
	}
	accounts := map[string]*Account{} // by directory URL; nil: tried and failed
	account := func(dirURL string) *Account {
		if a, ok := accounts[dirURL]; ok {
			return a
		}
		accounts[dirURL] = nil
		caDir := acmeshCADir(s.Dir, dirURL)
		keyFile := filepath.Join(caDir, "account.key")
		if _, err := os.Stat(keyFile); err != nil {
			// acme.sh before 2.8.2 kept one account per host: ca/HOST/.
			caDir = filepath.Dir(caDir)
			if keyFile = filepath.Join(caDir, "account.key"); !strings.HasPrefix(caDir, filepath.Join(s.Dir, "ca")+string(filepath.Separator)) {
				return nil
			}
			if _, err := os.Stat(keyFile); err != nil {
				return nil
			}
		}
		a := Account{DirectoryURL: dirURL, Email: defaultEmail, Source: rel(s.Dir, caDir)}
		if kv, err := readShellVars(filepath.Join(caDir, "ca.conf")); err == nil {
			a.Location = kv["ACCOUNT_URL"]
			if e := kv["CA_EMAIL"]; e != "" {
				a.Email = e
			}
		}
		found, ok := s.addAccountFile(a, keyFile)
		if !ok {
			return nil
		}
		accounts[dirURL] = &found
		return &found
	}
	if opts.DirectoryURL != "" {
		account(opts.DirectoryURL)
	}
	for _, d := range subdirs(s.Dir) {
		base := strings.TrimSuffix(d, "_ecc")
		dir := filepath.Join(s.Dir, d)
		conf := filepath.Join(dir, base+".conf")
		kv, err := readShellVars(conf)
		if err != nil {
			continue // not a certificate folder (ca/, deploy/, dnsapi/, ...)
		}
		c := Certificate{DirectoryURL: kv["Le_API"], URL: kv["Le_LinkCert"], Source: rel(s.Dir, dir)}
		if opts.DirectoryURL != "" {
			if c.DirectoryURL != "" && c.DirectoryURL != opts.DirectoryURL {
				continue
			}
			c.DirectoryURL = opts.DirectoryURL
		}
		if a := account(c.DirectoryURL); a != nil {
			c.Email, c.Account = a.Email, a.Location
		}
		cert, err := readFile(filepath.Join(dir, base+".cer"))
		if err != nil {
			s.problem(c.Source, "certificate: %w", err)
			continue
		}
		chain, _ := os.ReadFile(filepath.Join(dir, "ca.cer"))
		keyPEM, err := readFile(filepath.Join(dir, base+".key"))
		if err != nil {
			s.problem(c.Source, "private key: %w", err)
			continue
		}
		c.ChainPEM = joinPEM(cert, chain)
		primary := kv["Le_Domain"]
		if primary == "" {
			primary = base
		}
		s.addCertificate(c, primary, keyPEM, rel(s.Dir, filepath.Join(dir, base+".cer")))
	}
	return nil
}

// acmeshCADir is where acme.sh keeps the account for a directory URL:
// ca/HOST/PATH, HOST without its port.
func acmeshCADir(home, dirURL string) string {
	rest := dirURL
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	hostport, path, _ := strings.Cut(rest, "/")
	host := hostport
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		host = hostport[:i]
	}
	return filepath.Join(home, "ca", host, filepath.FromSlash(strings.Trim(path, "/")))
}
