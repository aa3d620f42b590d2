package cli

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/dnsprovider"
	"github.com/certkeeper/certkeeper/internal/fileowner"
	"github.com/certkeeper/certkeeper/solver/dns01"
)

// dnsConfig is how dns-01 records are set and checked: the flags (and
// config keys) shared by cert issue, cert renew, proxy and
// dns-persist-record. docs/dns.md documents them.
type dnsConfig struct {
	Provider    string        `yaml:"dns" arg:"PROVIDER" help:"DNS PROVIDER that sets dns-01 records: rfc2136 (dynamic updates with TSIG), powerdns\n(its HTTP API), exec (your program), or one compiled in (listed below if any); see docs/dns.md"`
	Server      string        `yaml:"dns_server" arg:"ADDR" help:"ADDR (host:port) of the primary DNS server that takes RFC 2136 updates; also asked for\nzones the resolvers do not know, and for the record when checking propagation"`
	TSIGKey     string        `yaml:"tsig_key" secret:"true" arg:"NAME:ALG:SECRET" help:"TSIG key as NAME:ALG:SECRET (alg hmac-sha256 or hmac-sha512); prefer --tsig-key-file,\nas the command line is visible to other users"`
	TSIGKeyFile string        `yaml:"tsig_key_file" arg:"FILE" help:"FILE holding the TSIG key: NAME:ALG:SECRET, a BIND key clause as tsig-keygen writes, or a\nKnot key section as keymgr -t writes"`
	Exec        string        `yaml:"dns_exec" arg:"PROGRAM" help:"PROGRAM run as PROGRAM present|cleanup FQDN VALUE by --dns exec"`
	ExecMode    string        `yaml:"dns_exec_mode" arg:"MODE" default:"default" help:"MODE of --dns exec: default (PROGRAM present|cleanup FQDN VALUE) or raw (PROGRAM\npresent|cleanup -- DOMAIN TOKEN KEYAUTH), as lego's exec provider and EXEC_MODE=RAW"`
	APIURL      string        `yaml:"dns_api_url" arg:"URL" help:"URL of the PowerDNS HTTP API for --dns powerdns (e.g. http://127.0.0.1:8081)"`
	APIKeyFile  string        `yaml:"dns_api_key_file" arg:"FILE" help:"FILE holding the PowerDNS API key (api-key in pdns.conf) for --dns powerdns"`
	Resolvers   []string      `yaml:"dns_resolver" arg:"ADDR" help:"ADDR (host:port; port 53 if omitted) of a resolver to find zones and nameservers\nthrough; repeatable (default: those in /etc/resolv.conf)"`
	Zones       []string      `yaml:"dns_zone" arg:"ZONE" help:"ZONE that holds the records, named outright instead of looked up; repeatable\n(the longest that holds a record is used)"`
	CheckPort   int           `yaml:"dns_check_port" arg:"PORT" default:"53" help:"PORT to ask the zone's authoritative nameservers on when checking propagation"`
	Timeout     time.Duration `yaml:"dns_timeout" arg:"DURATION" default:"2m" help:"how long (DURATION) to wait for a record to reach every authoritative nameserver"`
	NoCheck     bool          `yaml:"dns_no_check" help:"do not wait for records to propagate (for split-horizon DNS)"`
	// Settings and SettingFiles are a compiled-in provider's settings
	// (package dnsprovider): values, and files holding them (secrets).
	Settings     map[string]string `yaml:"dns_setting" arg:"NAME=VALUE" help:"NAME=VALUE setting of a compiled-in --dns provider; repeatable"`
	SettingFiles map[string]string `yaml:"dns_setting_file" arg:"NAME=FILE" help:"NAME=FILE: a compiled-in --dns provider's setting read from FILE (the only way to give\na secret one); repeatable"`
}

// keyFiles are the files of secrets the DNS provider reads at start, by
// their config key.
func (c *dnsConfig) keyFiles() map[string]string {
	files := map[string]string{"tsig_key_file": c.TSIGKeyFile, "dns_api_key_file": c.APIKeyFile}
	for name, file := range c.SettingFiles {
		files["dns_setting_file "+name] = file
	}
	maps.DeleteFunc(files, func(_, file string) bool { return file == "" })
	return files
}

// keyDigests hashes what each of keyFiles holds now (nothing, for a file
// that cannot be read), for a reload to tell a key rotated in place.
func (c *dnsConfig) keyDigests() map[string][32]byte {
	out := map[string][32]byte{}
	for key, file := range c.keyFiles() {
		data, _ := os.ReadFile(file)
		out[key] = sha256.Sum256(data)
	}
	return out
}

// warnKeysChanged warns, at a reload, of each key file whose content
// changed since the start (started): the provider read it then, and keeps
// that key until a restart (a DNS trial rotated its TSIG key, and the
// reload said nothing changed).
func warnKeysChanged(env *Env, c *dnsConfig, started map[string][32]byte) {
	for key, file := range c.keyFiles() {
		if data, _ := os.ReadFile(file); sha256.Sum256(data) != started[key] {
			env.Logger.Warn("a DNS key file changed since the start; it is read at start only: restart certkeeper (or upgrade it in place with SIGUSR2) to use the new key",
				slog.String("key", key), slog.String("file", file))
		}
	}
}

// builtinSettings are the built-in providers' settings, from their flags
// (each provider reads its own).
func (c *dnsConfig) builtinSettings() dnsprovider.Settings {
	return dnsprovider.Settings{"server": c.Server, "tsig_key": c.TSIGKey, "tsig_key_file": c.TSIGKeyFile,
		"api_url": c.APIURL, "api_key_file": c.APIKeyFile, "program": c.Exec, "mode": c.ExecMode}
}

// provider builds the DNS provider --dns names, from the built-in ones and
// those compiled in (env.dnsProviders); nil with no --dns.
func (c *dnsConfig) provider(env *Env) (dns01.Provider, error) {
	if c.Provider == "" {
		return nil, c.checkWithoutProvider()
	}
	for _, f := range [][2]string{{"--tsig-key-file", c.TSIGKeyFile}, {"--dns-api-key-file", c.APIKeyFile}} {
		if mode, all := fileowner.ReadableByAll(f[1]); f[1] != "" && all && !env.warned[f[1]] {
			if env.warned == nil {
				env.warned = map[string]bool{}
			}
			env.warned[f[1]] = true
			fmt.Fprintf(cmp.Or(env.unquiet, env.Stderr), "certkeeper: warning: %s %s is readable by every user (mode %04o), who may then change the zone: chmod 600 %[2]s (640 to share it with a group)\n", f[0], f[1], mode)
		}
	}
	prov, err := dnsprovider.CommandFlags().Choose(c.Provider, c.builtinSettings(), c.Settings, c.SettingFiles, env.dnsProviders)
	var uerr *dnsprovider.UsageError
	if errors.As(err, &uerr) {
		return nil, usagef("%s", uerr.Msg)
	}
	return prov, err
}

// checkWithoutProvider refuses, when no --dns is given, the flags that
// only a DNS provider uses: a config with tsig_key_file but no dns would
// otherwise start, and fail at the first dns-01 order (or never use them).
func (c *dnsConfig) checkWithoutProvider() error {
	if c.Provider != "" {
		return nil
	}
	var flags, keys []string
	for _, f := range []struct {
		key string
		set bool
	}{
		{"tsig_key", c.TSIGKey != ""}, {"tsig_key_file", c.TSIGKeyFile != ""}, {"dns_exec", c.Exec != ""},
		{"dns_exec_mode", c.ExecMode != "" && c.ExecMode != "default"}, {"dns_api_url", c.APIURL != ""},
		{"dns_api_key_file", c.APIKeyFile != ""}, {"dns_timeout", c.Timeout != 0 && c.Timeout != 2*time.Minute},
		{"dns_no_check", c.NoCheck}, {"dns_setting", len(c.Settings) > 0}, {"dns_setting_file", len(c.SettingFiles) > 0},
	} {
		if f.set {
			flags, keys = append(flags, "--"+strings.ReplaceAll(f.key, "_", "-")), append(keys, f.key)
		}
	}
	if len(flags) == 0 {
		return nil
	}
	need, them := "needs", "it"
	if len(flags) > 1 {
		need, them = "need", "them"
	}
	return usagef("%s (%s) %s --dns PROVIDER, which sets the dns-01 records (rfc2136, powerdns or exec; see docs/dns.md): add --dns, or drop %s",
		strings.Join(flags, ", "), strings.Join(keys, ", "), need, them)
}

// printDNSProviders lists the compiled-in providers and their settings,
// for the --help of commands that take --dns.
func printDNSProviders(w io.Writer, ps []dnsprovider.Provider) {
	dnsprovider.CommandFlags().WriteHelp(w, ps)
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
	if c.CheckPort < 0 || c.CheckPort > 65535 {
		return nil, usagef("--dns-check-port %d: want a port number, 1 to 65535", c.CheckPort)
	}
	return &dns01.Solver{Provider: p, Resolver: c.resolver(), PropagationTimeout: c.Timeout, SkipPropagationCheck: c.NoCheck}, nil
}
