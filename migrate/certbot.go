package migrate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// certbot keeps (in its --config-dir, /etc/letsencrypt by default):
//
//	renewal/NAME.conf                    server = DIRECTORY_URL, account = ID, key paths
//	live/NAME/{cert,chain,fullchain,privkey}.pem   symlinks into archive/NAME/
//	accounts/HOST/PATH/ID/regr.json      {"body": {"contact": [...]}, "uri": ACCOUNT_URL}
//	accounts/HOST/PATH/ID/private_key.json   the account key as a JSON Web Key

// certbotAccount is one account directory of certbot.
type certbotAccount struct {
	dir, directoryURL string
	acct              Account
	keyPEM            []byte
	err               error
}

func readCertbot(s *State, opts Options) error {
	accounts := map[string]*certbotAccount{} // by account ID
	root := filepath.Join(s.Dir, "accounts")
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if _, err := os.Stat(filepath.Join(path, "regr.json")); err != nil {
			return nil
		}
		// accounts/HOST/PATH.../ID: the directory URL is https://HOST/PATH.
		r, _ := filepath.Rel(root, filepath.Dir(path))
		a := &certbotAccount{dir: path, directoryURL: "https://" + filepath.ToSlash(r)}
		a.acct, a.keyPEM, a.err = readCertbotAccount(path)
		a.acct.DirectoryURL = a.directoryURL
		accounts[filepath.Base(path)] = a
		return filepath.SkipDir
	})
	seen := map[string]bool{}
	confs, _ := filepath.Glob(filepath.Join(s.Dir, "renewal", "*.conf"))
	for _, conf := range confs {
		name := strings.TrimSuffix(filepath.Base(conf), ".conf")
		kv, err := readCertbotConf(conf)
		if err != nil {
			s.problem(conf, "reading renewal configuration: %w", err)
			continue
		}
		c := Certificate{DirectoryURL: kv["server"], Source: rel(s.Dir, conf)}
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
				s.addAccount(acct, a.keyPEM)
			}
		}
		live := filepath.Join(s.Dir, "live", name)
		paths := map[string]string{"cert": filepath.Join(live, "cert.pem"), "chain": filepath.Join(live, "chain.pem"), "privkey": filepath.Join(live, "privkey.pem")}
		for k := range paths {
			if p := kv[k]; p != "" && strings.HasPrefix(filepath.Clean(p), filepath.Clean(s.Dir)) {
				paths[k] = p
			}
		}
		cert, err := readFile(paths["cert"])
		if err != nil {
			s.problem(c.Source, "certificate: %w", err)
			continue
		}
		chain, _ := os.ReadFile(paths["chain"])
		keyPEM, err := readFile(paths["privkey"])
		if err != nil {
			s.problem(c.Source, "private key: %w", err)
			continue
		}
		c.ChainPEM = joinPEM(cert, chain)
		s.addCertificate(c, name, keyPEM, rel(s.Dir, paths["cert"]))
	}
	for _, a := range accounts {
		if seen[a.dir] {
			continue
		}
		if a.err != nil {
			s.problem(rel(s.Dir, a.dir), "%w", a.err)
			continue
		}
		acct := a.acct
		if opts.DirectoryURL != "" {
			acct.DirectoryURL = opts.DirectoryURL
		}
		s.addAccount(acct, a.keyPEM)
	}
	return nil
}

func readCertbotAccount(dir string) (Account, []byte, error) {
	a := Account{Source: dir}
	data, err := readFile(filepath.Join(dir, "regr.json"))
	if err != nil {
		return a, nil, err
	}
	var regr struct {
		Body struct {
			Contact []string `json:"contact"`
		} `json:"body"`
		URI string `json:"uri"`
	}
	if err := json.Unmarshal(data, &regr); err != nil {
		return a, nil, err
	}
	a.Location, a.Email = regr.URI, emailOf(regr.Body.Contact)
	jwk, err := readFile(filepath.Join(dir, "private_key.json"))
	if err != nil {
		return a, nil, err
	}
	keyPEM, err := parsePEMKeyOrJWK(jwk)
	return a, keyPEM, err
}

// readCertbotConf reads the "key = value" lines of a renewal
// configuration (configobj format), ignoring sections and comments.
func readCertbotConf(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, dup := kv[k]; !dup {
			kv[k] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	return kv, sc.Err()
}
