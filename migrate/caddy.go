package migrate

import (
	"encoding/json"
	"os"
	"path/filepath"
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

func readCaddy(s *State, opts Options) error {
	// Every account, by its URL, and the issuer directory it lives in.
	type caddyAccount struct {
		acct   Account
		keyPEM []byte
		issuer string
		used   bool
	}
	var accounts []*caddyAccount
	acmeDir := filepath.Join(s.Dir, "acme")
	for _, iss := range subdirs(acmeDir) {
		usersDir := filepath.Join(acmeDir, iss, "users")
		for _, email := range subdirs(usersDir) {
			dir := filepath.Join(usersDir, email)
			jsons, _ := filepath.Glob(filepath.Join(dir, "*.json"))
			for _, j := range jsons {
				a := &caddyAccount{issuer: iss, acct: Account{Source: rel(s.Dir, j)}}
				data, err := readFile(j)
				if err != nil {
					s.problem(a.acct.Source, "%w", err)
					continue
				}
				var rec struct {
					Contact  []string `json:"contact"`
					Location string   `json:"location"`
				}
				if err := json.Unmarshal(data, &rec); err != nil {
					s.problem(a.acct.Source, "%w", err)
					continue
				}
				a.acct.Location, a.acct.Email = rec.Location, emailOf(rec.Contact)
				if a.keyPEM, err = readFile(strings.TrimSuffix(j, ".json") + ".key"); err != nil {
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

	certsDir := filepath.Join(s.Dir, "certificates")
	for _, iss := range subdirs(certsDir) {
		for _, name := range subdirs(filepath.Join(certsDir, iss)) {
			dir := filepath.Join(certsDir, iss, name)
			c := Certificate{Source: rel(s.Dir, dir)}
			if iss == "local" {
				s.problem(c.Source, "issued by Caddy's internal CA, not an ACME CA: certkeeper's local CA (--ca local) replaces it")
				continue
			}
			var meta struct {
				IssuerData struct {
					URL     string `json:"url"`
					CA      string `json:"ca"`
					Account string `json:"account"`
				} `json:"issuer_data"`
			}
			if data, err := os.ReadFile(filepath.Join(dir, name+".json")); err == nil {
				_ = json.Unmarshal(data, &meta)
			}
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
					s.addAccount(acct, a.keyPEM)
				}
			}
			chain, err := readFile(filepath.Join(dir, name+".crt"))
			if err != nil {
				s.problem(c.Source, "certificate: %w", err)
				continue
			}
			keyPEM, err := readFile(filepath.Join(dir, name+".key"))
			if err != nil {
				s.problem(c.Source, "private key: %w", err)
				continue
			}
			c.ChainPEM = chain
			s.addCertificate(c, strings.ReplaceAll(name, "wildcard_", "*"), keyPEM, rel(s.Dir, filepath.Join(dir, name+".crt")))
		}
	}
	for _, a := range accounts {
		if a.used {
			continue
		}
		acct := a.acct
		acct.DirectoryURL = opts.DirectoryURL
		s.addAccount(acct, a.keyPEM) // reported when no directory URL is known
	}
	return nil
}
