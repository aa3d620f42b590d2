package migrate

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// dehydrated keeps (in its BASEDIR, /var/lib/dehydrated on Debian):
//
//	accounts/B64/account_key.pem        B64 = base64url(CA directory URL + "\n")
//	accounts/B64/account_id.json        {"url": ACCOUNT_URL} (dehydrated ≥ 0.7)
//	accounts/B64/registration_info.json {"contact": [...], ...}
//	certs/NAME/{cert,chain,fullchain,privkey}.pem  symlinks to the newest files
//
// Certificates do not record their CA: it is the only account's CA, or
// the CA= line of BASEDIR/config, or Options.DirectoryURL.

func readDehydrated(s *State, opts Options) error {
	accountsDir := filepath.Join(s.Dir, "accounts")
	var cas []string
	byCA := map[string]Account{}
	for _, d := range subdirs(accountsDir) {
		src := filepath.Join(accountsDir, d)
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(d, "="))
		if err != nil {
			s.problem(rel(s.Dir, src), "directory name is not the base64 of a CA URL: %w", err)
			continue
		}
		a := Account{DirectoryURL: strings.TrimSpace(string(raw)), Source: rel(s.Dir, src)}
		if opts.DirectoryURL != "" && a.DirectoryURL != opts.DirectoryURL {
			continue
		}
		if data, err := os.ReadFile(filepath.Join(src, "account_id.json")); err == nil {
			var id struct {
				URL string `json:"url"`
			}
			_ = json.Unmarshal(data, &id)
			a.Location = id.URL
		}
		if data, err := os.ReadFile(filepath.Join(src, "registration_info.json")); err == nil {
			var reg struct {
				Contact []string `json:"contact"`
			}
			_ = json.Unmarshal(data, &reg)
			a.Email = emailOf(reg.Contact)
		}
		if acct, ok := s.addAccountFile(a, filepath.Join(src, "account_key.pem")); ok {
			cas = append(cas, acct.DirectoryURL)
			byCA[acct.DirectoryURL] = acct
		}
	}

	ca := opts.DirectoryURL
	if ca == "" && len(cas) == 1 {
		ca = cas[0]
	}
	if ca == "" {
		ca = dehydratedConfigCA(filepath.Join(s.Dir, "config"))
	}
	certsDir := filepath.Join(s.Dir, "certs")
	for _, name := range subdirs(certsDir) {
		dir := filepath.Join(certsDir, name)
		c := Certificate{DirectoryURL: ca, Source: rel(s.Dir, dir)}
		if a, ok := byCA[ca]; ok {
			c.Email, c.Account = a.Email, a.Location
		}
		cert, err := readFile(filepath.Join(dir, "cert.pem"))
		if err != nil {
			s.problem(c.Source, "certificate: %w", err)
			continue
		}
		chain, _ := os.ReadFile(filepath.Join(dir, "chain.pem"))
		keyPEM, err := readFile(filepath.Join(dir, "privkey.pem"))
		if err != nil {
			s.problem(c.Source, "private key: %w", err)
			continue
		}
		c.ChainPEM = joinPEM(cert, chain)
		s.addCertificate(c, name, keyPEM, rel(s.Dir, filepath.Join(dir, "cert.pem")))
	}
	return nil
}

// dehydratedConfigCA returns the CA= setting of a dehydrated config file,
// if it is a URL.
func dehydratedConfigCA(path string) string {
	kv, err := readShellVars(path)
	if err != nil {
		return ""
	}
	if ca := kv["CA"]; strings.HasPrefix(ca, "https://") {
		return ca
	}
	return ""
}

// readShellVars reads NAME=value and NAME='value' lines of a shell
// configuration file (as dehydrated and acme.sh write them), without
// running anything.
func readShellVars(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimPrefix(line, "export ")
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(k, " \t") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		kv[k] = v
	}
	return kv, nil
}
