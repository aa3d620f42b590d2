package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/mholt/acmez/v3/acme"
	"gopkg.in/yaml.v3"
)

// engineConfig is the configuration every long-running front-end (proxy,
// server) shares: which names, which CAs, where state lives. Every flag
// has a key of the same name (with "_" for "-") in the --config YAML file;
// docs/config.md documents each.
type engineConfig struct {
	Allow       []string `yaml:"allow"`
	Ask         string   `yaml:"ask"`
	CA          []string `yaml:"ca"`
	Email       string   `yaml:"email"`
	Challenge   []string `yaml:"challenge"`
	Storage     string   `yaml:"storage"`
	KeyType     string   `yaml:"key_type"`
	Profile     string   `yaml:"profile"`
	EABKID      string   `yaml:"eab_kid"`
	EABHMAC     string   `yaml:"eab_hmac"`
	CARoots     string   `yaml:"ca_roots"`
	RSAFallback bool     `yaml:"rsa_fallback"`
	RequireOwn  bool     `yaml:"require_own_ip"`
	CertFiles   []string `yaml:"cert_file"`
	// CertFileCheck is how often --cert-file files are checked for
	// changes.
	CertFileCheck time.Duration `yaml:"cert_file_check"`
	// Names gives names matching a pattern their own CA chain, key type,
	// challenges or profile (config file only).
	Names []nameConfig `yaml:"names"`
}

// nameConfig is one entry of the config's "names" list.
type nameConfig struct {
	Pattern   string   `yaml:"pattern"`
	CA        []string `yaml:"ca"`
	KeyType   string   `yaml:"key_type"`
	Challenge []string `yaml:"challenge"`
	Profile   string   `yaml:"profile"`
}

// register sets up the shared flags; challengeHelp describes --challenge
// for the front-end.
func (c *engineConfig) register(fs *flag.FlagSet, challengeHelp string) {
	fs.Var((*stringsFlag)(&c.Allow), "allow", "a name `PATTERN` that may get a certificate: a.example, *.a.example (any subdomain),\nor re:REGEXP; repeatable")
	fs.StringVar(&c.Ask, "ask", "", "ask this `URL` (GET URL?domain=NAME, 200 = yes) before obtaining a certificate")
	fs.Var((*stringsFlag)(&c.CA), "ca", "the CA: an ACME directory `URL`, letsencrypt, staging or local; repeat for a fallback\nchain, tried in order (default letsencrypt)")
	fs.StringVar(&c.Email, "email", "", "contact `EMAIL` for the ACME account")
	fs.Var((*stringsFlag)(&c.Challenge), "challenge", challengeHelp)
	fs.StringVar(&c.Storage, "storage", "", "`DIR` for certkeeper's state (default as for cert issue)")
	fs.StringVar(&c.KeyType, "key-type", "", "certificate key `TYPE` (default ecdsa-p256)")
	fs.StringVar(&c.Profile, "profile", "", "ACME `PROFILE` to order (default: the CA's)")
	fs.StringVar(&c.EABKID, "eab-kid", "", "external account binding key `ID`")
	fs.StringVar(&c.EABHMAC, "eab-hmac", "", "external account binding `HMAC` key (base64url)")
	fs.StringVar(&c.CARoots, "ca-roots", "", "PEM `FILE` of extra roots to trust for the CA's HTTPS endpoint")
	fs.BoolVar(&c.RSAFallback, "rsa-fallback", false, "also obtain RSA certificates, for clients that cannot use ECDSA")
	fs.BoolVar(&c.RequireOwn, "require-own-ip", false, "obtain certificates only for names that resolve to this host's own addresses")
	fs.DurationVar(&c.CertFileCheck, "cert-file-check", 5*time.Second, "check --cert-file files for changes every `DURATION`")
	fs.Var((*stringsFlag)(&c.CertFiles), "cert-file", "`CERT:KEY`: serve this certificate (PEM chain and key files made elsewhere) for the\nnames it covers, reloaded when the files change; repeatable")
}

// readConfigFile decodes a --config YAML file into cfg, refusing unknown
// keys.
func readConfigFile(file string, cfg any) error {
	if file == "" {
		return nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("--config %s: %w", file, err)
	}
	return nil
}

// setIf sets *dst to v when the flag name was given on the command line.
func setIf[T any](set map[string]bool, name string, dst *T, v T) {
	if set[name] {
		*dst = v
	}
}

// overlay lays the flags that were set on top of c (read from the config
// file).
func (c *engineConfig) overlay(flags *engineConfig, set map[string]bool) {
	setIf(set, "allow", &c.Allow, flags.Allow)
	setIf(set, "ask", &c.Ask, flags.Ask)
	setIf(set, "ca", &c.CA, flags.CA)
	setIf(set, "email", &c.Email, flags.Email)
	setIf(set, "challenge", &c.Challenge, flags.Challenge)
	setIf(set, "storage", &c.Storage, flags.Storage)
	setIf(set, "key-type", &c.KeyType, flags.KeyType)
	setIf(set, "profile", &c.Profile, flags.Profile)
	setIf(set, "eab-kid", &c.EABKID, flags.EABKID)
	setIf(set, "eab-hmac", &c.EABHMAC, flags.EABHMAC)
	setIf(set, "ca-roots", &c.CARoots, flags.CARoots)
	setIf(set, "cert-file", &c.CertFiles, flags.CertFiles)
	setIf(set, "cert-file-check", &c.CertFileCheck, flags.CertFileCheck)
	setIf(set, "rsa-fallback", &c.RSAFallback, flags.RSAFallback)
	setIf(set, "require-own-ip", &c.RequireOwn, flags.RequireOwn)
}

// policy builds the on-demand policy from --allow, --require-own-ip and
// --ask (all must agree); nil when none is given.
func (c *engineConfig) policy() (policy.Policy, error) {
	var checks []policy.Policy
	if len(c.Allow) > 0 {
		p, err := policy.ParseAllowlist(c.Allow...)
		if err != nil {
			return nil, usagef("--allow: %v", err)
		}
		checks = append(checks, p)
	}
	if c.RequireOwn {
		checks = append(checks, &policy.RequireOwnIP{})
	}
	if c.Ask != "" {
		checks = append(checks, &policy.AskURL{URL: c.Ask})
	}
	switch len(checks) {
	case 0:
		return nil, nil
	case 1:
		return checks[0], nil
	}
	return policy.All(checks...), nil
}

// frontEnd says what a front-end offers the engine: whether http-01 and
// tls-alpn-01 can be answered (and the flags that enable them, for the
// error), and the User-Agent suffix of its ACME requests.
type frontEnd struct {
	http01, alpn       bool
	http01Via, alpnVia string
	userAgent          string
}

// manager builds the Manager of c, without its Policy (the caller sets it,
// so that a reload can swap it).
func (c *engineConfig) manager(st *filestore.Store, env *Env, fe frontEnd) (*certkeeper.Manager, error) {
	keyType, err := issuer.ParseKeyType(c.KeyType)
	if err != nil {
		return nil, usagef("--key-type: %v", err)
	}
	issuers, err := c.issuers(st, env, fe)
	if err != nil {
		return nil, err
	}
	var rules []certkeeper.NameRule
	for i, n := range c.Names {
		if _, err := policy.ParseAllowlist(n.Pattern); err != nil || n.Pattern == "" {
			return nil, usagef("--config: names[%d]: pattern %q: %v", i, n.Pattern, err)
		}
		sub := *c
		if len(n.CA) > 0 {
			sub.CA = n.CA
		}
		if len(n.Challenge) > 0 {
			sub.Challenge = n.Challenge
		}
		if n.Profile != "" {
			sub.Profile = n.Profile
		}
		ruleIssuers, err := sub.issuers(st, env, fe)
		if err != nil {
			return nil, fmt.Errorf("--config: names[%d] (%s): %w", i, n.Pattern, err)
		}
		kt, err := issuer.ParseKeyType(n.KeyType)
		if err != nil {
			return nil, usagef("--config: names[%d] (%s): %v", i, n.Pattern, err)
		}
		if n.KeyType == "" {
			kt = ""
		}
		rules = append(rules, certkeeper.NameRule{Pattern: n.Pattern, Issuers: ruleIssuers, KeyType: kt})
	}
	var files []certkeeper.CertFile
	for _, s := range c.CertFiles {
		cf, err := certkeeper.ParseCertFile(s)
		if err != nil {
			return nil, usagef("--cert-file: %v", err)
		}
		files = append(files, cf)
	}
	return &certkeeper.Manager{
		Issuers:       issuers,
		Rules:         rules,
		RSAFallback:   c.RSAFallback,
		Storage:       st,
		Email:         c.Email,
		KeyType:       keyType,
		CertFiles:     files,
		CertFileCheck: c.CertFileCheck,
		Logger:        env.Logger,
	}, nil
}

// reloadablePolicy is the Manager's Policy: whatever current holds (nil
// refuses every name).
func reloadablePolicy(current func() policy.Policy) policy.Policy {
	return policy.Func(func(ctx context.Context, name string) error {
		p := current()
		if p == nil {
			return fmt.Errorf("%w: no --allow or --ask configured", policy.ErrDenied)
		}
		return p.Decide(ctx, name)
	})
}

// issuers builds the fallback chain from --ca.
func (c *engineConfig) issuers(st *filestore.Store, env *Env, fe frontEnd) ([]issuer.Issuer, error) {
	cas := c.CA
	if len(cas) == 0 {
		cas = []string{"letsencrypt"}
	}
	if (c.EABKID == "") != (c.EABHMAC == "") {
		return nil, usagef("--eab-kid and --eab-hmac go together")
	}
	order := c.Challenge
	if len(order) == 0 {
		if fe.alpn {
			order = append(order, acmeca.TLSALPN01)
		}
		if fe.http01 {
			order = append(order, acmeca.HTTP01)
		}
	}
	for _, ch := range order {
		switch ch {
		case acmeca.TLSALPN01:
			if !fe.alpn {
				return nil, usagef("--challenge tls-alpn-01 needs %s", fe.alpnVia)
			}
		case acmeca.HTTP01:
			if !fe.http01 {
				return nil, usagef("--challenge http-01 needs %s", fe.http01Via)
			}
		default:
			return nil, usagef("--challenge %q: use tls-alpn-01 or http-01", ch)
		}
	}
	hc, err := caHTTPClient(c.CARoots)
	if err != nil {
		return nil, err
	}
	var out []issuer.Issuer
	for _, ca := range cas {
		if strings.EqualFold(ca, "local") {
			out = append(out, &localca.CA{Storage: st, Logger: env.Logger})
			continue
		}
		iss := &acmeca.Issuer{
			DirectoryURL: caURL(ca), Email: c.Email, Storage: st, Profile: c.Profile,
			HTTPClient: hc, ChallengeOrder: order, UserAgent: fe.userAgent, Logger: env.Logger,
		}
		if c.EABKID != "" {
			iss.EAB = &acme.EAB{KeyID: c.EABKID, MACKey: c.EABHMAC}
		}
		out = append(out, iss)
	}
	return out, nil
}

// warnNoPolicy warns when no name can get a new certificate.
func (c *engineConfig) warnNoPolicy(env *Env) {
	if len(c.Allow) == 0 && c.Ask == "" {
		fmt.Fprintln(env.Stderr, "certkeeper: warning: no --allow or --ask: no new certificate will be obtained, only stored ones served")
	}
}
