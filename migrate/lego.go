package migrate

import (
	"encoding/json"
	"path"
	"strings"
)

// lego keeps (in its --path, ./.lego by default):
//
//	accounts/HOST_PORT/EMAIL/account.json   {"email", "registration": {"body", "uri"}}
//	accounts/HOST_PORT/EMAIL/keys/EMAIL.key the account key (PEM)
//	certificates/NAME.crt, NAME.key, NAME.issuer.crt, NAME.json {"domain", "certUrl"}
//
// NAME is the first domain with "*" spelled "_". Only the CA's host and
// port are recorded, not its directory URL: well-known CAs are recognised
// by host, others need Options.DirectoryURL.

// legoAccount is lego's account.json.
type legoAccount struct {
	Email        string `json:"email"`
	Registration struct {
		Body struct {
			Contact []string `json:"contact"`
		} `json:"body"`
		URI string `json:"uri"`
	} `json:"registration"`
}

// legoCertMeta is lego's NAME.json beside a certificate.
type legoCertMeta struct {
	Domain  string `json:"domain"`
	CertURL string `json:"certUrl"`
}

func readLego(s *State, opts Options) error {
	byHost := map[string][]Account{} // the accounts, by CA host:port
	for _, hostDir := range subdirs(s.fsys, "accounts") {
		host := legoHost(hostDir)
		dirURL := opts.DirectoryURL
		if dirURL != "" && hostOf(dirURL) != host {
			continue // another CA's account
		}
		if dirURL == "" {
			dirURL = knownDirectories[hostName("https://"+host)]
		}
		for _, email := range subdirs(s.fsys, path.Join("accounts", hostDir)) {
			src := path.Join("accounts", hostDir, email)
			a := Account{DirectoryURL: dirURL, Source: src}
			data, err := readFile(s.fsys, path.Join(src, "account.json"))
			if err != nil {
				s.problem(a.Source, "%w", err)
				continue
			}
			var rec legoAccount
			if err := json.Unmarshal(data, &rec); err != nil {
				s.problem(a.Source, "account.json: %w", err)
				continue
			}
			a.Location, a.Email = rec.Registration.URI, rec.Email
			if e := emailOf(rec.Registration.Body.Contact); e != "" {
				a.Email = e
			}
			if acct, ok := s.addAccountFile(a, path.Join(src, "keys", email+".key")); ok {
				byHost[host] = append(byHost[host], acct)
			}
		}
	}

	for _, crt := range filesIn(s.fsys, "certificates", ".crt") {
		if strings.HasSuffix(crt, ".issuer.crt") {
			continue
		}
		base := strings.TrimSuffix(crt, ".crt")
		c := Certificate{Source: crt, DirectoryURL: opts.DirectoryURL}
		var meta legoCertMeta
		data, err := readFileIfExists(s.fsys, base+".json")
		if err != nil {
			s.problem(c.Source, "%w", err)
			continue
		}
		_ = json.Unmarshal(data, &meta) // absent or damaged: the file name says the domain
		c.URL = meta.CertURL
		host := hostOf(meta.CertURL)
		if c.DirectoryURL == "" {
			c.DirectoryURL = knownDirectories[hostName(meta.CertURL)]
		} else if host != "" && host != hostOf(c.DirectoryURL) {
			continue // issued by another CA than the one asked for
		}
		// The account: the only one lego has at that CA.
		if accts := byHost[host]; len(accts) == 1 {
			c.Email, c.Account = accts[0].Email, accts[0].Location
		}
		keyFile := base + ".key"
		chainPEM, keyPEM, ok := s.readCertFiles(c.Source, crt, "", keyFile)
		if !ok {
			continue
		}
		c.ChainPEM = chainPEM // lego's NAME.crt holds the bundle (leaf + issuer)
		primary := meta.Domain
		if primary == "" {
			primary = strings.ReplaceAll(path.Base(base), "_", "*")
		}
		s.addCertificate(c, primary, keyPEM, crt, keyFile)
	}
	return nil
}

// legoHost turns lego's account directory name (host with ":" spelled
// "_") back into host:port.
func legoHost(dir string) string {
	if i := strings.LastIndexByte(dir, '_'); i > 0 {
		return dir[:i] + ":" + dir[i+1:]
	}
	return dir
}
