package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/redisstore"
	"gopkg.in/yaml.v3"
)

// This file reads the --config YAML file of proxy and server. It walks the
// YAML nodes itself rather than letting yaml.v3 fill the struct, so that
// every error names the file, the line and the key, suggests the nearest
// key for a typo, and never shows a Go type name; a scalar where a list is
// expected is a one-item list; durations take "d" for days.

// configError is one mistake in a config file.
type configError struct {
	file string
	line int
	key  string // "ca", "names[1].key_type"; empty for the file as a whole
	msg  string
}

func (e *configError) Error() string {
	if e.key == "" {
		return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.file, e.line, e.key, e.msg)
}

// configReader decodes one file, collecting every error.
type configReader struct {
	file  string
	errs  []error
	notes []string // deprecated keys used
}

func (r *configReader) errorf(n *yaml.Node, key, format string, args ...any) {
	r.errs = append(r.errs, &configError{file: r.file, line: n.Line, key: key, msg: fmt.Sprintf(format, args...)})
}

// readConfigFile decodes a --config YAML file into cfg (a pointer to a
// struct with yaml tags), refusing unknown keys and checking each value
// (checkConfigValue). Its error joins every mistake found, each as
// "FILE:LINE: KEY: what is wrong".
func readConfigFile(file string, cfg any) error {
	if file == "" {
		return nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if l, rest, ok := strings.Cut(strings.TrimPrefix(msg, "line "), ": "); ok && strings.HasPrefix(msg, "line ") {
			if n, err := strconv.Atoi(l); err == nil {
				return &configError{file: file, line: n, msg: rest + " (not valid YAML)"}
			}
		}
		return fmt.Errorf("--config %s: %s (not valid YAML)", file, msg)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // an empty file sets nothing
	}
	r := &configReader{file: file}
	r.mapping(doc.Content[0], reflect.ValueOf(cfg).Elem(), "")
	if n, ok := cfg.(configNotes); ok {
		for _, note := range r.notes {
			n.addNote(note)
		}
	}
	return errors.Join(r.errs...)
}

// yamlKeys maps the yaml keys of struct type t to their field indexes,
// following ",inline" fields.
func yamlKeys(t reflect.Type) map[string][]int {
	keys := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			for k, idx := range yamlKeys(f.Type) {
				keys[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name != "" && name != "-" {
			keys[name] = []int{i}
		}
	}
	return keys
}

// mapping decodes the YAML mapping n into the struct v; path is the key
// path of n ("" at the top, "names[1]" below).
func (r *configReader) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		what := "want key: value lines"
		if path != "" {
			what = "want key: value settings, e.g. pattern: a.example"
		}
		r.errorf(n, path, "%s", what)
		return
	}
	keys := yamlKeys(v.Type())
	aliases := yamlAliases(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := kn.Value
		if to, ok := aliases[key]; ok {
			r.notes = append(r.notes, fmt.Sprintf("%s:%d: %s is deprecated and will be removed; use %s", r.file, kn.Line, key, to))
			key = to
		}
		full := key
		if path != "" {
			full = path + "." + key
		}
		idx, ok := keys[key]
		if !ok {
			msg := "unknown key"
			names := make([]string, 0, len(keys))
			for k := range keys {
				names = append(names, k)
			}
			sort.Strings(names)
			if s := cmdline.Suggest(key, names); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			} else {
				msg += " (docs/config.md lists them)"
			}
			r.errorf(kn, full, "%s", msg)
			continue
		}
		if first, dup := seen[key]; dup {
			r.errorf(kn, full, "given twice (first on line %d): keep one", first)
			continue
		}
		seen[key] = kn.Line
		r.value(vn, v.FieldByIndex(idx), full, key)
	}
}

var durationType = reflect.TypeOf(time.Duration(0))

// value decodes n into v. full is the key path for messages, key the last
// key (which picks checkConfigValue's check).
func (r *configReader) value(n *yaml.Node, v reflect.Value, full, key string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with nothing: the default
	}
	if v.Kind() == reflect.Slice {
		items := []*yaml.Node{n}
		switch n.Kind {
		case yaml.SequenceNode:
			items = n.Content
		case yaml.MappingNode:
			if v.Type().Elem().Kind() != reflect.Struct {
				r.errorf(n, full, "want a value or a list of values, not key: value settings")
				return
			}
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			name := full // a single value stands for the key itself
			if n.Kind == yaml.SequenceNode {
				name = fmt.Sprintf("%s[%d]", full, i)
			}
			r.value(item, s.Index(i), name, key)
		}
		v.Set(s)
		return
	}
	if v.Kind() == reflect.Struct {
		r.mapping(n, v, full)
		return
	}
	if v.Kind() == reflect.Map {
		r.stringMap(n, v, full)
		return
	}
	if n.Kind != yaml.ScalarNode {
		r.errorf(n, full, "want a single value, not a %s", nodeKind(n))
		return
	}
	switch {
	case v.Type() == durationType:
		d, err := parseDuration(n.Value)
		if err != nil {
			r.errorf(n, full, "%v", err)
			return
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.Bool:
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			r.errorf(n, full, "%q: want true or false", n.Value)
		}
	case v.Kind() == reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if err != nil {
			r.errorf(n, full, "%q: want a whole number", n.Value)
			return
		}
		v.SetInt(int64(i))
	case v.Kind() == reflect.String:
		// An empty value means the default, as an absent key does.
		if err := checkConfigValue(key, n.Value); n.Value != "" && err != nil {
			r.errorf(n, full, "%v", err)
			return
		}
		v.SetString(n.Value)
	default:
		// A programmer error: a config struct grew a type this reader
		// does not know.
		panic(fmt.Sprintf("config key %s: unsupported field type %s", full, v.Type()))
	}
}

// stringMap decodes the YAML mapping n into the map[string]string v, whose
// keys are free-form (dns_setting: {zone: a.example}). Values are not
// quoted in errors: they may be secrets in the wrong place.
func (r *configReader) stringMap(n *yaml.Node, v reflect.Value, full string) {
	if n.Kind != yaml.MappingNode {
		r.errorf(n, full, "want NAME: VALUE settings, e.g. %s: {zone: a.example}", full)
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if vn.Kind == yaml.AliasNode {
			vn = vn.Alias
		}
		key := reflect.ValueOf(kn.Value)
		switch {
		case vn.Kind != yaml.ScalarNode:
			r.errorf(vn, full+"."+kn.Value, "want a single value, not a %s", nodeKind(vn))
		case m.MapIndex(key).IsValid():
			r.errorf(kn, full+"."+kn.Value, "given twice: keep one")
		default:
			m.SetMapIndex(key, reflect.ValueOf(vn.Value))
		}
	}
	v.Set(m)
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "set of key: value settings"
	}
	return "value"
}

// checkConfigValue checks one string value of the config key key (a list
// key's each item), the check its flag gets too, so that a mistake is
// reported with its file and line at start rather than at the first
// handshake.
func checkConfigValue(key, v string) error {
	switch key {
	case "ca":
		return checkCA(v)
	case "backend":
		_, err := backendURL(v)
		return err
	case "route":
		_, err := parseRoute(v)
		return err
	case "allow", "pattern":
		if _, err := policy.ParseAllowlist(v); err != nil {
			return err
		}
	case "storage":
		return checkStorage(v)
	case "key_type":
		_, err := issuer.ParseKeyType(v)
		return err
	case "order_limit":
		_, _, err := parseOrderLimit(v)
		return err
	case "challenge":
		return checkChallenge(v)
	case "log_level":
		if _, err := newLogger(io.Discard, "text", v); err != nil {
			return fmt.Errorf("%q: use debug, info, warn or error", v)
		}
	case "log_format":
		if v != "text" && v != "json" {
			return fmt.Errorf("%q: use text or json", v)
		}
	}
	return nil
}

// checkChallenge checks a challenge type's name.
func checkChallenge(v string) error {
	switch v {
	case acmeca.TLSALPN01, acmeca.HTTP01, acmeca.DNS01, acmeca.DNSPersist01:
		return nil
	}
	msg := fmt.Sprintf("%q: use tls-alpn-01, http-01, dns-01 or dns-persist-01", v)
	if s := cmdline.Suggest(v, []string{acmeca.TLSALPN01, acmeca.HTTP01, acmeca.DNS01, acmeca.DNSPersist01}); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	return errors.New(msg)
}

// checkStorage checks the syntax of a --storage value without connecting:
// a directory, or a Redis URL that redisstore can open.
func checkStorage(spec string) error {
	if !isURL(spec) {
		return nil
	}
	scheme, _, _ := strings.Cut(spec, "://")
	if !strings.HasPrefix(strings.ToLower(scheme), "redis") {
		return fmt.Errorf("%s: unknown scheme: give a directory or a redis://, rediss://, redis+cluster:// or redis+sentinel:// URL", storageWhere(spec))
	}
	rs, err := redisstore.Open(spec)
	if err != nil {
		return err
	}
	return rs.Close()
}

// check is the engine's part of --check-config: what manager and
// services check before anything starts, without opening storage or
// listening. It returns every error found.
func (c *engineConfig) check(env *Env, fe frontEnd) []error {
	c.printNotes(env)
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := checkStorage(c.Storage); err != nil {
		add(fmt.Errorf("--storage: %w", err))
	}
	if c.StorageKey != "" {
		if _, err := os.Stat(c.StorageKey); err != nil {
			add(fmt.Errorf("--storage-key-file: %w", err))
		}
	}
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
	if n == 1 {
		return errors.New("the configuration has 1 error")
	}
	return fmt.Errorf("the configuration has %d errors", n)
}
