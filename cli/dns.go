package cli

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certkeeper/certkeeper/dnsprovider"
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
	// Settings and SettingFiles are a compiled-in provider's settings
	// (package dnsprovider): values, and files holding them (secrets).
	Settings     map[string]string `yaml:"dns_setting"`
	SettingFiles map[string]string `yaml:"dns_setting_file"`
}

func (c *dnsConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Provider, "dns", "", "DNS `PROVIDER` that sets dns-01 records: rfc2136 (dynamic updates with TSIG), powerdns\n(its HTTP API), exec (your program), or one compiled in (listed below if any); see docs/dns.md")
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
	fs.Var((*settingsFlag)(&c.Settings), "dns-setting", "`NAME=VALUE` setting of a compiled-in --dns provider; repeatable")
	fs.Var((*settingsFlag)(&c.SettingFiles), "dns-setting-file", "`NAME=FILE`: a compiled-in --dns provider's setting read from FILE (the only way to give\na secret one); repeatable")
}

// settingsFlag is a repeatable NAME=VALUE flag.
type settingsFlag map[string]string

func (s *settingsFlag) String() string { return strings.Join(s.entries(), ",") }

// entries returns the settings as NAME=VALUE, sorted.
func (s *settingsFlag) entries() []string {
	var kv []string
	for k, v := range *s {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return kv
}

func (s *settingsFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, not %q", v)
	}
	if *s == nil {
		*s = map[string]string{}
	}
	(*s)[name] = value
	return nil
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
		"dns-setting":      func() { c.Settings = mergeSettings(c.Settings, flags.Settings) },
		"dns-setting-file": func() { c.SettingFiles = mergeSettings(c.SettingFiles, flags.SettingFiles) },
	} {
		if set[name] {
			apply()
		}
	}
}

// mergeSettings returns base with over's values in place of its own.
func mergeSettings(base, over map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range over {
		m[k] = v
	}
	return m
}

// builtinDNS are the providers every certkeeper has. They take their own
// flags (--dns-server, --dns-exec, --dns-api-url...) rather than settings,
// which they predate; past that they are found and built as compiled-in
// providers are.
func (c *dnsConfig) builtinDNS() []dnsprovider.Provider {
	return []dnsprovider.Provider{
		{Name: "rfc2136", Help: "dynamic updates with TSIG (--dns-server, --tsig-key-file)", New: func(dnsprovider.Settings) (dns01.Provider, error) { return c.rfc2136() }},
		{Name: "powerdns", Help: "PowerDNS's HTTP API (--dns-api-url, --dns-api-key-file)", New: func(dnsprovider.Settings) (dns01.Provider, error) { return c.powerDNS() }},
		{Name: "exec", Help: "your program (--dns-exec, --dns-exec-mode)", New: func(dnsprovider.Settings) (dns01.Provider, error) { return c.exec() }},
	}
}

// provider builds the DNS provider --dns names, from the built-in ones and
// those compiled in (env.dnsProviders); nil with no --dns.
func (c *dnsConfig) provider(env *Env) (dns01.Provider, error) {
	if c.Provider == "" {
		if len(c.Settings) > 0 || len(c.SettingFiles) > 0 {
			return nil, usagef("--dns-setting and --dns-setting-file (dns_setting, dns_setting_file) need --dns PROVIDER")
		}
		return nil, nil
	}
	builtin := c.builtinDNS()
	all := append(builtin, env.dnsProviders...)
	i := slices.IndexFunc(all, func(p dnsprovider.Provider) bool { return p.Name == c.Provider })
	if i < 0 {
		var names []string
		for _, p := range all {
			names = append(names, p.Name)
		}
		return nil, usagef("--dns %q: use %s or %s", c.Provider, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
	}
	p := all[i]
	settings, err := c.settings(p)
	if err != nil {
		return nil, err
	}
	prov, err := p.New(settings)
	if err != nil && i >= len(builtin) {
		return nil, fmt.Errorf("--dns %s: %w", p.Name, err)
	}
	return prov, err
}

// settings checks the --dns-setting and --dns-setting-file values against
// p's settings and reads the files. A secret is never quoted.
func (c *dnsConfig) settings(p dnsprovider.Provider) (dnsprovider.Settings, error) {
	known := func(name string) (dnsprovider.Setting, error) {
		i := slices.IndexFunc(p.Settings, func(s dnsprovider.Setting) bool { return s.Name == name })
		if i < 0 {
			var names []string
			for _, s := range p.Settings {
				names = append(names, s.Name)
			}
			takes := "takes no settings (see its flags in --help)"
			if len(names) > 0 {
				takes = "takes " + strings.Join(names, ", ")
			}
			return dnsprovider.Setting{}, usagef("--dns-setting %s: --dns %s %s", name, p.Name, takes)
		}
		return p.Settings[i], nil
	}
	settings := dnsprovider.Settings{}
	for name, value := range c.Settings {
		s, err := known(name)
		if err != nil {
			return nil, err
		}
		if s.Secret {
			return nil, usagef("--dns-setting %s: a secret, so not on the command line or in the config file: give --dns-setting-file %s=FILE (dns_setting_file)", name, name)
		}
		settings[name] = value
	}
	for name, file := range c.SettingFiles {
		if _, err := known(name); err != nil {
			return nil, err
		}
		if _, ok := settings[name]; ok {
			return nil, usagef("--dns-setting %s and --dns-setting-file %s: give one", name, name)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--dns-setting-file %s: %w", name, err)
		}
		settings[name] = strings.TrimSpace(string(data))
	}
	for _, s := range p.Settings {
		if _, ok := settings[s.Name]; !ok && s.Required {
			how := "--dns-setting " + s.Name + "=VALUE"
			if s.Secret {
				how = "--dns-setting-file " + s.Name + "=FILE"
			}
			return nil, usagef("--dns %s needs %s (%s)", p.Name, how, s.Help)
		}
	}
	return settings, nil
}

// printDNSProviders lists the compiled-in providers and their settings,
// for the --help of commands that take --dns.
func printDNSProviders(w io.Writer, ps []dnsprovider.Provider) {
	if len(ps) == 0 {
		return
	}
	fmt.Fprintf(w, "\nDNS providers compiled in (--dns NAME; settings with --dns-setting NAME=VALUE, secret ones\nwith --dns-setting-file NAME=FILE):\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, p := range ps {
		fmt.Fprintf(tw, "  %s\t%s\n", p.Name, p.Help)
		for _, s := range p.Settings {
			var tags []string
			if s.Required {
				tags = append(tags, "required")
			}
			if s.Secret {
				tags = append(tags, "secret: from a file")
			}
			help := s.Help
			if len(tags) > 0 {
				help += " (" + strings.Join(tags, ", ") + ")"
			}
			fmt.Fprintf(tw, "    %s\t%s\n", s.Name, help)
		}
	}
	tw.Flush()
}

func (c *dnsConfig) rfc2136() (dns01.Provider, error) {
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
}

func (c *dnsConfig) exec() (dns01.Provider, error) {
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
}

func (c *dnsConfig) powerDNS() (dns01.Provider, error) {
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
}

// resolver is where records are looked up.
func (c *dnsConfig) resolver() dns01.Resolver {
	return dns01.Resolver{Servers: c.Resolvers, AuthoritativePort: c.CheckPort, Primary: c.Server, Zones: c.Zones}
}

// solver builds the dns-01 solver; it needs --dns.
func (c *dnsConfig) solver(env *Env) (*dns01.Solver, error) {
	p, err := c.provider(env)
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
