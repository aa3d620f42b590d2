package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"reflect"
	"strings"

	"github.com/certkeeper/certkeeper/alert"
	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/proxyprotocol"
	"github.com/certkeeper/certkeeper/internal/regularfile"
	"github.com/certkeeper/certkeeper/internal/yamlconf"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/proxy"
	"github.com/certkeeper/certkeeper/storage/open"
)

// This file reads the --config YAML file of proxy and server
// (internal/yamlconf does the decoding, with FILE:LINE errors) and checks
// the values whose syntax a flag checks too.

// readConfig reads a --config file: not a named pipe or a device (which
// would hang the start or exhaust memory), at most 1 MiB (regularfile).
func readConfig(file string) ([]byte, error) { return regularfile.Read(file, 1<<20) }

// readConfigFile decodes a --config YAML file into cfg (a pointer to a
// struct with yaml tags) with package internal/yamlconf, refusing unknown
// keys and checking each value (checkConfigValue). Its error joins every
// mistake found, each as "FILE:LINE: KEY: what is wrong". The notes of
// deprecated keys go to cfg, if it keeps them (configNotes).
func readConfigFile(file string, cfg any) error {
	if file == "" {
		return nil
	}
	data, err := readConfig(file)
	if err == nil {
		err = yamlconf.CheckTrusted(file)
	}
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	notes, err := yamlconf.Decode(file, data, cfg, checkConfigValue)
	if yerr, ok := errors.AsType[*yamlconf.Error](err); ok && yerr.Line == 0 {
		return fmt.Errorf("--config %w", err)
	}
	if n, ok := cfg.(configNotes); ok {
		for _, note := range notes {
			n.addNote(note)
		}
		if keys, e := yamlconf.Exposed(file, data, reflect.TypeOf(cfg).Elem()); len(keys) > 0 {
			n.addNote(fmt.Sprintf("warning: --config %s is readable by %s (mode %04o) and holds %s: %s", file, e.Who, e.Mode, strings.Join(keys, ", "), e.Fix))
		}
	}
	return err
}

// checkConfigValue checks one string value of the config key key (a list
// key's each item), the check its flag gets too, so that a mistake is
// reported with its file and line at start rather than at the first
// handshake.
func checkConfigValue(key, v string) error {
	switch key {
	case "ca":
		return engine.CheckCA(v)
	case "backend":
		_, err := proxy.BackendURL(v)
		return err
	case "route":
		_, err := proxy.ParseUserRoute(v)
		return err
	case "allow", "pattern":
		if _, err := policy.ParseAllowlist(v); err != nil {
			return err
		}
	case "ask":
		return (&policy.AskURL{URL: v}).Check()
	case "storage":
		return open.Check(v) // syntax only: a directory, or a URL of a scheme storage/open knows
	case "listen", "http_addr", "tls_addr", "tls_alpn_addr", "metrics_addr", "status_addr":
		if err := cmdline.CheckListenAddr(v); err != nil {
			return fmt.Errorf("%q: %w", v, err)
		}
	case "key_type":
		_, err := issuer.ParseKeyType(v)
		return err
	case "email":
		return acmeca.CheckEmail(v)
	case "alert_webhook":
		return alert.CheckWebhook(v)
	case "proxy_protocol_from":
		if _, err := proxyprotocol.ParsePrefix(v); err != nil {
			return fmt.Errorf("%q: want an address or a CIDR prefix, e.g. 10.0.0.0/8", v)
		}
	case "order_limit", "client_limit":
		_, _, err := engine.ParseOrderLimit(v)
		return err
	case "challenge":
		return engine.CheckChallenge(v)
	case "log_level":
		if _, err := newLogger(io.Discard, "text", v, false); err != nil {
			return fmt.Errorf("%q: use debug, info, warn or error", v)
		}
	case "log_format":
		if v != "text" && v != "json" {
			return fmt.Errorf("%q: use text or json", v)
		}
	}
	return nil
}

// check is the engine's part of --check-config: what manager and
// services check before anything starts, without opening storage or
// listening (dev: development mode, which may keep state in ./). It
// returns every error found.
func (c *engineConfig) check(env *Env, fe frontEnd, dev bool) []error {
	c.printNotes(env)
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := open.Check(c.Storage); err != nil {
		add(fmt.Errorf("--storage: %w", err))
	}
	add(open.CheckFiles(c.Storage, open.Options{KeyFile: c.StorageKey, PasswordFile: c.StoragePass, Names: c.flagNames()}))
	add(c.checkDefault(dev))
	_, err := c.policy()
	add(err)
	_, err = c.manager(nil, env, fe)
	add(err)
	add(c.Ops.check())
	if c.Deploy.Format != "" || c.Deploy.Out != "" {
		_, err := c.Deploy.deployer(env, "deploy-")
		add(err)
	}
	return errs
}

// reportCheck ends --check-config: "configuration OK" on stdout, or every
// error on stderr and a failure.
func reportCheck(env *Env, errs []error) error {
	if len(errs) == 0 {
		fmt.Fprintln(env.Stdout, "configuration OK")
		return nil
	}
	n := 0
	for _, err := range errs {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(env.Stderr, line)
			n++
		}
	}
	return fmt.Errorf("the configuration has %s", cmdline.Plural(n, "error"))
}

// source is where a front-end's (proxy, server) configuration comes
// from: the --config file and the flags given, which win over it.
type source struct {
	file  string
	check bool // --check-config
	// set holds the names of the flags given (after parse).
	set map[string]bool
	// env holds the flags of set given by environment variables, with
	// their variables (Env.fromEnv).
	env map[string]string
	fs  *flag.FlagSet
}

// register registers --config, --check-config and the flags of cfg (a
// front-end's config, which inlines engine); challengeHelp is the
// front-end's usage of --challenge.
func (src *source) register(fs *flag.FlagSet, cfg any, engine *engineConfig, challengeHelp string) {
	src.fs = fs
	fs.StringVar(&src.file, "config", "", "read settings from this YAML `FILE` (flags given too win); see docs/config.md")
	fs.BoolVar(&src.check, "check-config", false, "check the configuration (--config and the flags) without starting: print\n\"configuration OK\" and exit 0, or print every error and exit 1")
	cmdline.Bind(fs, cfg)
	engine.register(fs, challengeHelp)
}

// attribute adds to err where each flag it names came from when that was
// the config file (cmdline.Attribute), for an error that names --tls-addr
// when the operator wrote tls_addr; cfg is the front-end's config.
func (src *source) attribute(cfg any, err error) error {
	if src.file == "" && len(src.env) == 0 || err == nil {
		return err
	}
	return cmdline.Attribute(err, src.credit(cfg))
}

// attributeAll is attribute for each of errs.
func (src *source) attributeAll(cfg any, errs []error) []error {
	for i, err := range errs {
		errs[i] = src.attribute(cfg, err)
	}
	return errs
}

// noteFlags notes in engine, for printNotes, each key of the config file
// that a flag given overrides (cfg is the front-end's config): at a
// reload, an edit there changes nothing; and each secret given as a flag,
// which other users can read for as long as the process runs.
func (src *source) noteFlags(cfg any, engine *engineConfig) {
	data, _ := readConfig(src.file) // none: nothing to note
	for _, key := range yamlconf.Overridden(data, reflect.TypeOf(cfg).Elem(), src.set) {
		by := "--" + strings.ReplaceAll(key, "_", "-") + " on the command line"
		if v, ok := src.env[strings.ReplaceAll(key, "_", "-")]; ok {
			by = "$" + v + " in the environment"
		}
		engine.addNote(fmt.Sprintf("%s in %s is overridden by %s", key, src.file, by))
	}
	onCommandLine := maps.Clone(src.set) // ps shows them; the environment only to the user
	maps.DeleteFunc(onCommandLine, func(name string, _ bool) bool { _, ok := src.env[name]; return ok })
	if onCommandLine["storage"] && open.HoldsPassword(engine.Storage) {
		engine.addNote("warning: --storage on the command line holds a password, which other users of this host can read (ps) for as long as certkeeper runs: " +
			"put storage in a --config file only you can read (chmod 600), or in $CERTKEEPER_STORAGE, instead")
	}
	for _, key := range yamlconf.SecretsGiven(reflect.TypeOf(cfg).Elem(), onCommandLine) {
		name, instead := strings.ReplaceAll(key, "_", "-"), "put "+key+" in a --config file only you can read (chmod 600) instead"
		if src.fs.Lookup(name+"-file") != nil { // --tsig-key: --tsig-key-file
			instead = "give it in a file with --" + name + "-file (or put " + key + " in a --config file only you can read, chmod 600)"
		}
		engine.addNote(fmt.Sprintf("warning: --%s on the command line can be read by other users of this host (ps) for as long as certkeeper runs: %s", name, instead))
	}
}

// parsed records, once the command line is parsed, which flags were
// given (the environment's too), and the global flags' values in engine
// (for overlay).
func (src *source) parsed(env *Env, engine *engineConfig) {
	src.set, src.env = map[string]bool{}, env.fromEnv
	src.fs.Visit(func(f *flag.Flag) { src.set[f.Name] = true })
	engine.LogFormat = src.fs.Lookup("log-format").Value.String()
	engine.LogLevel = src.fs.Lookup("log-level").Value.String()
}
