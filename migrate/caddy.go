package migrate

import (
	"encoding/json"
	"path"
	"strings"
)

// Caddy/CertMagic keeps (in its storage, ~/.local/share/caddy by default):
//
//	certificates/ISSUER/NAME/NAME.{crt,key,json}  json: {"sans", "issuer_data": {"url", "ca", "account"}}
//	acme/ISSUER/users/EMAIL/USER.{json,key}       json: {"contact", "location", ...}
//
// ISSUER is the CA's host and path with "/" spelled "-", which cannot be
// turned back into a URL; the certificates' issuer_data.ca holds the
// directory URL. Certificates of Caddy's internal CA ("local") are not
// from an ACME CA and are reported, not imported.

// caddyUser is CertMagic's USER.json.
type caddyUser struct {
	Contact  []string `json:"contact"`
	Location string   `json:"location"`
}

// caddyCertMeta is CertMagic's NAME.json beside a certificate.
type caddyCertMeta struct {
	IssuerData struct {
		URL     string `json:"url"`
		CA      string `json:"ca"`
		Account string `json:"account"`
	} `json:"issuer_data"`
}

func readCaddy(s *State, opts Options) error {
	// Every account, by its URL, and the issuer directory it lives in.
	type caddyAccount struct {
		acct    Account
		keyPEM  []byte
		keyFile string
		used    bool
	}
	var accounts []*caddyAccount
	for _, iss := range subdirs(s.fsys, "acme") {
		usersDir := path.Join("acme", iss, "users")
		for _, email := range subdirs(s.fsys, usersDir) {
			for _, j := range filesIn(s.fsys, path.Join(usersDir, email), ".json") {
				a := &caddyAccount{acct: Account{Source: j}, keyFile: strings.TrimSuffix(j, ".json") + ".key"}
				data, err := readFile(s.fsys, j)
				if err != nil {
					s.problem(a.acct.Source, "%w", err)
					continue
				}
				var rec caddyUser
				if err := json.Unmarshal(data, &rec); err != nil {
					s.problem(a.acct.Source, "%w", err)
					continue
				}
				a.acct.Location, a.acct.Email = rec.Location, emailOf(rec.Contact)
				if a.keyPEM, err = readFile(s.fsys, a.keyFile); err != nil {
					s.problem(a.acct.Source, "account key: %w", err)
					continue
				}
				accounts = append(accounts, a)
			}
		}
	}
	find := func(location string) *caddyAccount {
		for _, a := range accounts {
			if location != "" && a.acct.Location == location {
				return a
			}
		}
		return nil
	}

	for _, iss := range subdirs(s.fsys, "certificates") {
		for _, name := range subdirs(s.fsys, path.Join("certificates", iss)) {
			dir := path.Join("certificates", iss, name)
			c := Certificate{Source: dir}
			if iss == "local" {
				s.problem(c.Source, "issued by Caddy's internal CA, not an ACME CA: certkeeper's local CA (--ca local) replaces it")
				continue
			}
			var meta caddyCertMeta
			data, err := readFileIfExists(s.fsys, path.Join(dir, name+".json"))
			if err != nil {
				s.problem(c.Source, "%w", err)
				continue
			}
			_ = json.Unmarshal(data, &meta) // absent or damaged: reported below as no directory URL
			c.DirectoryURL, c.URL, c.Account = meta.IssuerData.CA, meta.IssuerData.URL, meta.IssuerData.Account
			if opts.DirectoryURL != "" {
				if c.DirectoryURL != "" && c.DirectoryURL != opts.DirectoryURL {
					continue
				}
				c.DirectoryURL = opts.DirectoryURL
			}
			if a := find(c.Account); a != nil {
				c.Email = a.acct.Email
				if !a.used && c.DirectoryURL != "" {
					a.used = true
					acct := a.acct
					acct.DirectoryURL = c.DirectoryURL
					s.addAccount(acct, a.keyPEM, a.keyFile)
				}
			}
			certFile, keyFile := path.Join(dir, name+".crt"), path.Join(dir, name+".key")
			chainPEM, keyPEM, ok := s.readCertFiles(c.Source, certFile, "", keyFile)
			if !ok {
				continue
			}
			c.ChainPEM = chainPEM // Caddy's NAME.crt holds the whole chain
			s.addCertificate(c, strings.ReplaceAll(name, "wildcard_", "*"), keyPEM, certFile, keyFile)
		}
	}
	for _, a := range accounts {
		if a.used {
			continue
		}
		acct := a.acct
		acct.DirectoryURL = opts.DirectoryURL
		s.addAccount(acct, a.keyPEM, a.keyFile) // reported when no directory URL is known
	}
	return nil
}
