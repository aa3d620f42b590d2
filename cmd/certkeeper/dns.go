package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/solver/dns01"
	dnsexec "github.com/certkeeper/certkeeper/solver/dns01/exec"
	"github.com/certkeeper/certkeeper/solver/dns01/powerdns"
	"github.com/certkeeper/certkeeper/solver/dns01/rfc2136"
)

// dnsConfig is how dns-01 records are set and checked: the flags (and
// config keys) shared by cert issue, cert renew, proxy and
// dns-persist-record. docs/dns.md documents them.
type dnsConfig struct {
	Provider    string        `yaml:"dns"`
	Server      string        `yaml:"dns_server"`
	TSIGKey     string        `yaml:"tsig_key"`
	TSIGKeyFile string        `yaml:"tsig_key_file"`
	Exec        string        `yaml:"dns_exec"`
	ExecMode    string        `yaml:"dns_exec_mode"`
	APIURL      string        `yaml:"dns_api_url"`
	APIKeyFile  string        `yaml:"dns_api_key_file"`
	Resolvers   []string      `yaml:"dns_resolver"`
	Zones       []string      `yaml:"dns_zone"`
	CheckPort   int           `yaml:"dns_check_port"`
	Timeout     time.Duration `yaml:"dns_timeout"`
	NoCheck     bool          `yaml:"dns_no_check"`
}

func (c *dnsConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Provider, "dns", "", "DNS `PROVIDER` that sets dns-01 records: rfc2136 (dynamic updates with TSIG), powerdns\n(its HTTP API) or exec (your program); see docs/dns.md")
	fs.StringVar(&c.Server, "dns-server", "", "`ADDR` (host:port) of the primary DNS server that takes RFC 2136 updates; also asked for\nzones the resolvers do not know, and for the record when checking propagation")
	fs.StringVar(&c.TSIGKey, "tsig-key", "", "TSIG key as `NAME:ALG:SECRET` (alg hmac-sha256 or hmac-sha512); prefer --tsig-key-file,\nas the command line is visible to other users")
	fs.StringVar(&c.TSIGKeyFile, "tsig-key-file", "", "`FILE` holding the TSIG key: NAME:ALG:SECRET, or a BIND key clause as tsig-keygen writes")
	fs.StringVar(&c.Exec, "dns-exec", "", "`PROGRAM` run as PROGRAM present|cleanup FQDN VALUE by --dns exec")
	fs.StringVar(&c.ExecMode, "dns-exec-mode", "default", "`MODE` of --dns exec: default (PROGRAM present|cleanup FQDN VALUE) or raw (PROGRAM\npresent|cleanup -- DOMAIN TOKEN KEYAUTH), as lego's exec provider and EXEC_MODE=RAW")
	fs.StringVar(&c.APIURL, "dns-api-url", "", "`URL` of the PowerDNS HTTP API for --dns powerdns (e.g. http://127.0.0.1:8081)")
	fs.StringVar(&c.APIKeyFile, "dns-api-key-file", "", "`FILE` holding the PowerDNS API key (api-key in pdns.conf) for --dns powerdns")
	fs.Var((*stringsFlag)(&c.Resolvers), "dns-resolver", "`ADDR` (host:port) of a resolver to find zones and nameservers through; repeatable\n(default: those in /etc/resolv.conf)")
	fs.Var((*stringsFlag)(&c.Zones), "dns-zone", "`ZONE` that holds the records, named outright instead of looked up; repeatable\n(the longest that holds a record is used)")
	fs.IntVar(&c.CheckPort, "dns-check-port", 53, "`PORT` to ask the zone's authoritative nameservers on when checking propagation")
	c.Timeout = 2 * time.Minute
	fs.Var((*durationFlag)(&c.Timeout), "dns-timeout", "how long (`DURATION`) to wait for a record to reach every authoritative nameserver")
	fs.BoolVar(&c.NoCheck, "dns-no-check", false, "do not wait for records to propagate (for split-horizon DNS)")
}

// overlay copies the DNS flags that were set on the command line onto c.
func (c *dnsConfig) overlay(flags *dnsConfig, set map[string]bool) {
	for name, apply := range map[string]func(){
		"dns":              func() { c.Provider = flags.Provider },
		"dns-server":       func() { c.Server = flags.Server },
		"tsig-key":         func() { c.TSIGKey = flags.TSIGKey },
		"tsig-key-file":    func() { c.TSIGKeyFile = flags.TSIGKeyFile },
		"dns-exec":         func() { c.Exec = flags.Exec },
		"dns-exec-mode":    func() { c.ExecMode = flags.ExecMode },
		"dns-api-url":      func() { c.APIURL = flags.APIURL },
		"dns-api-key-file": func() { c.APIKeyFile = flags.APIKeyFile },
		"dns-resolver":     func() { c.Resolvers = flags.Resolvers },
		"dns-zone":         func() { c.Zones = flags.Zones },
		"dns-check-port":   func() { c.CheckPort = flags.CheckPort },
		"dns-timeout":      func() { c.Timeout = flags.Timeout },
		"dns-no-check":     func() { c.NoCheck = flags.NoCheck },
	} {
		if set[name] {
			apply()
		}
	}
}

// provider builds the DNS provider; nil with no --dns.
func (c *dnsConfig) provider() (dns01.Provider, error) {
	switch c.Provider {
	case "":
		return nil, nil
	case "rfc2136":
		if c.Server == "" {
			return nil, usagef("--dns rfc2136 needs --dns-server (host:port of the primary server)")
		}
		key := c.TSIGKey
		if c.TSIGKeyFile != "" {
			if key != "" {
				return nil, usagef("give --tsig-key or --tsig-key-file, not both")
			}
			var err error
			if key, err = readTSIGKeyFile(c.TSIGKeyFile); err != nil {
				return nil, err
			}
		}
		if key == "" {
			return nil, usagef("--dns rfc2136 needs --tsig-key NAME:ALG:SECRET or --tsig-key-file FILE")
		}
		p := &rfc2136.Provider{Server: c.Server}
		if err := p.ParseKey(key); err != nil {
			return nil, usagef("%v", err)
		}
		return p, nil
	case "exec":
		if c.Exec == "" {
			return nil, usagef("--dns exec needs --dns-exec PROGRAM")
		}
		p := &dnsexec.Provider{Program: c.Exec}
		switch strings.ToLower(c.ExecMode) {
		case "", "default":
		case "raw":
			p.Mode = dnsexec.ModeRaw
		default:
			return nil, usagef("--dns-exec-mode %q: use default (FQDN VALUE) or raw (-- DOMAIN TOKEN KEYAUTH, lego's EXEC_MODE=RAW)", c.ExecMode)
		}
		return p, nil
	case "powerdns":
		if c.APIURL == "" || c.APIKeyFile == "" {
			return nil, usagef("--dns powerdns needs --dns-api-url URL (the PowerDNS HTTP API) and --dns-api-key-file FILE (its api-key)")
		}
		u, err := url.Parse(c.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usagef("--dns-api-url %q: want an http:// or https:// URL such as http://127.0.0.1:8081", c.APIURL)
		}
		data, err := os.ReadFile(c.APIKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--dns-api-key-file: %w", err)
		}
		key := strings.TrimSpace(string(data))
		if key == "" || strings.ContainsAny(key, "\r\n") {
			// Never quote the file: it holds the key.
			return nil, fmt.Errorf("--dns-api-key-file %s: want the API key alone on one line", c.APIKeyFile)
		}
		return &powerdns.Provider{APIURL: c.APIURL, APIKey: key}, nil
	default:
		return nil, usagef("--dns %q: use rfc2136, powerdns or exec", c.Provider)
	}
}

// resolver is where records are looked up.
func (c *dnsConfig) resolver() dns01.Resolver {
	return dns01.Resolver{Servers: c.Resolvers, AuthoritativePort: c.CheckPort, Primary: c.Server, Zones: c.Zones}
}

// solver builds the dns-01 solver; it needs --dns.
func (c *dnsConfig) solver() (*dns01.Solver, error) {
	p, err := c.provider()
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, usagef("--challenge dns-01 needs a DNS provider: --dns rfc2136 (with --dns-server and --tsig-key), --dns powerdns (with --dns-api-url and --dns-api-key-file) or --dns exec --dns-exec PROGRAM")
	}
	return &dns01.Solver{Provider: p, Resolver: c.resolver(), PropagationTimeout: c.Timeout, SkipPropagationCheck: c.NoCheck}, nil
}

// bindKey matches a BIND key clause, as tsig-keygen and named.conf write it.
var bindKey = regexp.MustCompile(`(?s)key\s+"?([^"\s{]+)"?\s*\{.*?algorithm\s+"?([a-zA-Z0-9-]+)"?\s*;.*?secret\s+"([^"]+)"\s*;`)

// readTSIGKeyFile reads a TSIG key file: NAME:ALG:SECRET on one line, or a
// BIND key clause. The secret is never put in an error.
func readTSIGKeyFile(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--tsig-key-file: %w", err)
	}
	if m := bindKey.FindSubmatch(data); m != nil {
		return string(m[1]) + ":" + string(m[2]) + ":" + string(m[3]), nil
	}
	s := strings.TrimSpace(string(data))
	if strings.Count(s, ":") >= 2 && !strings.ContainsAny(s, "\n{") {
		return s, nil
	}
	return "", fmt.Errorf("--tsig-key-file %s: want NAME:ALG:SECRET or a BIND key clause (key \"NAME\" { algorithm ...; secret \"...\"; };)", file)
}

// parseUntil parses --until: an RFC 3339 time, a date (midnight UTC), or
// a duration from now ("8760h").
func parseUntil(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := parseDuration(s); err == nil && d > 0 {
		return time.Now().Add(d), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, usagef("--until %q: give a date (2027-01-31), an RFC 3339 time, or a duration (365d, 8760h)", s)
}
