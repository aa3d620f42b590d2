package migrate

import (
	"encoding/base64"
	"encoding/json"
	"path"
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
	var cas []string
	byCA := map[string]Account{}
	for _, d := range subdirs(s.fsys, "accounts") {
		src := path.Join("accounts", d)
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(d, "="))
		if err != nil {
			s.problem(src, "directory name is not the base64 of a CA URL: %w", err)
			continue
		}
		a := Account{DirectoryURL: strings.TrimSpace(string(raw)), Source: src}
		if opts.DirectoryURL != "" && a.DirectoryURL != opts.DirectoryURL {
			continue
		}
		idJSON, err := readFileIfExists(s.fsys, path.Join(src, "account_id.json"))
		if err != nil {
			s.problem(src, "%w", err)
			continue
		}
		regJSON, err := readFileIfExists(s.fsys, path.Join(src, "registration_info.json"))
		if err != nil {
			s.problem(src, "%w", err)
			continue
		}
		a.Location, a.Email = parseDehydratedAccount(idJSON, regJSON)
		if acct, ok := s.addAccountFile(a, path.Join(src, "account_key.pem")); ok {
			cas = append(cas, acct.DirectoryURL)
			byCA[acct.DirectoryURL] = acct
		}
	}

	ca := opts.DirectoryURL
	if ca == "" && len(cas) == 1 {
		ca = cas[0]
	}
	if ca == "" {
		config, err := readFileIfExists(s.fsys, "config")
		if err != nil {
			s.problem("config", "%w", err)
		}
		ca = dehydratedConfigCA(config)
	}
	for _, name := range subdirs(s.fsys, "certs") {
		dir := path.Join("certs", name)
		c := Certificate{DirectoryURL: ca, Source: dir}
		if a, ok := byCA[ca]; ok {
			c.Email, c.Account = a.Email, a.Location
		}
		certFile, keyFile := path.Join(dir, "cert.pem"), path.Join(dir, "privkey.pem")
		chainPEM, keyPEM, ok := s.readCertFiles(c.Source, certFile, path.Join(dir, "chain.pem"), keyFile)
		if !ok {
			continue
		}
		c.ChainPEM = chainPEM
		s.addCertificate(c, name, keyPEM, certFile, keyFile)
	}
	return nil
}

// parseDehydratedAccount returns the account URL of account_id.json and
// the contact email of registration_info.json, each "" if absent or
// damaged (addAccount then says what is missing).
func parseDehydratedAccount(idJSON, regJSON []byte) (location, email string) {
	var id struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(idJSON, &id) == nil {
		location = id.URL
	}
	var reg struct {
		Contact []string `json:"contact"`
	}
	if json.Unmarshal(regJSON, &reg) == nil {
		email = emailOf(reg.Contact)
	}
	return location, email
}

// dehydratedConfigCA returns the CA= setting of a dehydrated config file,
// if it is a URL.
func dehydratedConfigCA(config []byte) string {
	if ca := parseShellVars(config)["CA"]; strings.HasPrefix(ca, "https://") {
		return ca
	}
	return ""
}

// parseShellVars parses NAME=value and NAME='value' lines of a shell
// configuration file (as dehydrated and acme.sh write them), without
// running anything.
func parseShellVars(data []byte) map[string]string {
	kv := map[string]string{}
	for line := range strings.Lines(string(data)) {
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
	return kv
}
