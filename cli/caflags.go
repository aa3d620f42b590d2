package cli

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/mholt/acmez/v3/acme"
)

// caFlags choose a CA and the ACME account used with it. Every command
// that talks to a CA registers them with register, so each flag has one
// help text, and builds its issuers with issuer or acmeIssuer, the one
// place an acmeca.Issuer is made from flags. The yaml keys are those of
// the server and proxy config file (engineConfig inlines caFlags).
type caFlags struct {
	CA      []string `yaml:"ca"`
	Email   string   `yaml:"email"`
	KeyType string   `yaml:"key_type"`
	Profile string   `yaml:"profile"`
	EABKID  string   `yaml:"eab_kid"`
	EABHMAC string   `yaml:"eab_hmac" secret:"true"`
	CARoots string   `yaml:"ca_roots"`
}

// caUse says which CA flags a command takes besides --ca and --ca-roots.
type caUse uint8

const (
	caLocal caUse = 1 << iota // --ca local (certkeeper's own CA) is accepted
	caChain                   // --ca repeats: a fallback chain, letsencrypt when none
	caEmail                   // --email
	caEAB                     // --eab-kid and --eab-hmac
	caOrder                   // --key-type and --profile
)

// register registers the flags use asks for. A single --ca defaults to
// letsencrypt.
func (f *caFlags) register(fs *flag.FlagSet, use caUse) {
	help := "the CA: an ACME directory `URL`, letsencrypt or staging"
	if use&(caLocal|caChain) != 0 {
		help = "the CA: an ACME directory `URL`, letsencrypt, staging (Let's Encrypt's staging CA),\nor local (certkeeper's own CA, no network needed)"
	}
	if use&caChain != 0 {
		help += "; repeat for a fallback\nchain, tried in order (default letsencrypt)"
	} else {
		f.CA = []string{"letsencrypt"}
	}
	fs.Var(&cmdline.List{Values: &f.CA, Repeat: use&caChain != 0, Check: engine.CheckCA}, "ca", help)
	fs.StringVar(&f.CARoots, "ca-roots", "", "PEM `FILE` of extra roots to trust for the CA's HTTPS endpoint (SSL_CERT_FILE also works)")
	if use&caEmail != 0 {
		fs.StringVar(&f.Email, "email", "", "contact `EMAIL` of the ACME account; it names the account in --storage (optional)")
	}
	if use&caEAB != 0 {
		fs.StringVar(&f.EABKID, "eab-kid", "", "external account binding key `ID`, for CAs that require one")
		fs.StringVar(&f.EABHMAC, "eab-hmac", "", "external account binding `HMAC` key (base64url), with --eab-kid")
	}
	if use&caOrder != 0 {
		fs.StringVar(&f.KeyType, "key-type", string(issuer.ECDSAP256), "certificate key `TYPE`: ecdsa-p256, ecdsa-p384, rsa2048, rsa3072 or rsa4096")
		fs.StringVar(&f.Profile, "profile", "", "ACME `PROFILE` to order, e.g. tlsserver or shortlived at Let's Encrypt (default: the CA's)")
	}
}

// ca is the single --ca of commands that take one.
func (f *caFlags) ca() string {
	if len(f.CA) == 0 {
		return "letsencrypt"
	}
	return f.CA[0]
}

// local reports whether the single --ca is certkeeper's own CA.
func (f *caFlags) local() bool { return engine.IsLocal(f.ca()) }

// account is the ACME account the flags give: email, profile, external
// account binding and the roots of the CA's HTTPS endpoint.
func (f *caFlags) account(env *Env) (engine.Account, error) {
	if (f.EABKID == "") != (f.EABHMAC == "") {
		return engine.Account{}, usagef("--eab-kid and --eab-hmac go together")
	}
	if err := acmeca.CheckEmail(f.Email); err != nil {
		return engine.Account{}, usagef("--email %v", err)
	}
	hc, err := caHTTPClient(f.CARoots)
	if err != nil {
		return engine.Account{}, err
	}
	a := engine.Account{Email: f.Email, Profile: f.Profile, HTTPClient: hc, UserAgent: "cli", Logger: env.Logger}
	if f.EABKID != "" {
		a.EAB = &acme.EAB{KeyID: f.EABKID, MACKey: f.EABHMAC}
	}
	return a, nil
}

// acmeIssuer is the ACME issuer of CA ca (a --ca value, not local) with
// the flags' account, profile and roots; the caller adds solvers.
func (f *caFlags) acmeIssuer(env *Env, ca string, st storage.Storage) (*acmeca.Issuer, error) {
	a, err := f.account(env)
	if err != nil {
		return nil, err
	}
	return a.ACME(ca, st), nil
}

// issuerFor is the issuer of CA ca: the local CA for "local", else
// acmeIssuer's.
func (f *caFlags) issuerFor(env *Env, ca string, st storage.Storage) (issuer.Issuer, error) {
	if engine.IsLocal(ca) {
		return engine.Account{Logger: env.Logger}.Issuer(ca, st), f.forLocal()
	}
	return f.acmeIssuer(env, ca, st)
}

// forLocal refuses the ACME-only flags when the local CA is the only CA:
// it has no profiles and no accounts, so they would be ignored.
func (f *caFlags) forLocal() error {
	if f.Profile != "" || f.EABKID != "" || f.EABHMAC != "" {
		return usagef("--profile, --eab-kid and --eab-hmac apply to an ACME CA; --ca local (certkeeper's own CA) has no profiles or accounts: drop them")
	} else if err := acmeca.CheckEmail(f.Email); err != nil { // remembered for cert renew, perhaps from an ACME CA then
		return usagef("--email %v", err)
	}
	return nil
}

// caHTTPClient is the HTTP client for talking to a CA
// (engine.CAHTTPClient): the system roots (SSL_CERT_FILE and SSL_CERT_DIR
// work as usual) plus the PEM roots in rootsFile, if given.
func caHTTPClient(rootsFile string) (*http.Client, error) {
	var roots []byte
	if rootsFile != "" {
		data, err := os.ReadFile(rootsFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-roots: %w", err)
		}
		roots = append([]byte{}, data...) // not nil, even for an empty file
	}
	hc, err := engine.CAHTTPClient(roots)
	if errors.Is(err, engine.ErrNoRoots) {
		return nil, fmt.Errorf("--ca-roots %s: no PEM certificates found", rootsFile)
	}
	return hc, err
}
