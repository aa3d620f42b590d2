// Package yamlconf decodes a YAML configuration file into a struct with
// yaml tags, for people rather than programs: every error names the file,
// the line and the key ("proxy.yaml:4: names[0].key_typ: unknown key; did
// you mean key_type?"), suggests the nearest key for a typo, and never
// shows a Go type name; a scalar where a list is expected is a one-item
// list; durations take "d" for days (cmdline.ParseDuration, as on the
// command line); a renamed key keeps its old name as an alias with a
// deprecation note.
//
// It exists because yaml.v3's own decoding reports "cannot unmarshal !!seq
// into string" with no key, stops at the first mistake and accepts
// unknown keys. It walks the YAML nodes itself and collects every mistake.
//
// It does not read the file, apply defaults or know what a key means:
// the caller passes a Check for the values whose syntax it knows.
package yamlconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/fileowner"
	"github.com/certkeeper/certkeeper/internal/redact"
	"gopkg.in/yaml.v3"
)

// Error is one mistake in a config file.
type Error struct {
	File string
	// Line is the line of the mistake; 0 for a file that is not YAML at
	// all and whose parser gave no line.
	Line int
	Key  string // "ca", "names[1].key_type"; empty for the file as a whole
	Msg  string
}

// Error is "FILE:LINE: KEY: what is wrong" ("FILE: what is wrong" with no
// line).
func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.Key == "":
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// decoder decodes one file, collecting every error.
type decoder struct {
	file  string
	check func(key, value string) error
	errs  []error
	notes []string // deprecated keys used
}

func (r *decoder) errorf(n *yaml.Node, key, format string, args ...any) {
	r.errs = append(r.errs, &Error{File: r.file, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// parserError reports whether msg is one of yaml.v3's parser errors,
// whose line it gives counted from 0 (an unclosed "[" on line 7 was
// reported on line 6; a key indented wrongly on line 6, on line 5); its
// scanner errors count from 1.
func parserError(msg string) bool {
	switch msg {
	case "did not find expected <document start>", "did not find expected node content", "did not find expected key",
		"did not find expected '-' indicator", "did not find expected ',' or ']'", "did not find expected ',' or '}'",
		"found undefined tag handle":
		return true
	}
	return false
}

// Decode decodes data, the contents of the YAML file named file, into cfg
// (a pointer to a struct with yaml tags), refusing unknown keys. A field
// tagged `alias:"old_key"` also takes old_key, with a deprecation note in
// notes. check, if not nil, checks each non-empty string value (each item
// of a list) by the last key of its path; its error is reported with the
// value's line. The error joins every mistake found, each an *Error. An
// empty file sets nothing.
func Decode(file string, data []byte, cfg any, check func(key, value string) error) (notes []string, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if l, rest, ok := strings.Cut(strings.TrimPrefix(msg, "line "), ": "); ok && strings.HasPrefix(msg, "line ") {
			if n, err := strconv.Atoi(l); err == nil {
				if parserError(rest) {
					// yaml.v3 counts a parser error's line from 0, but
					// for a construct on the first line, where it gives
					// the line of the problem.
					n = min(n+1, max(1, bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n"))+1))
				}
				return nil, &Error{File: file, Line: n, Msg: rest + " (not valid YAML)"}
			}
		}
		return nil, &Error{File: file, Msg: msg + " (not valid YAML)"}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 || doc.Content[0].Kind == yaml.MappingNode && len(doc.Content[0].Content) == 0 {
		// A file emptied, or cut short, while being written (an editor,
		// configuration management): read at a reload or an upgrade it
		// would replace every setting with the defaults.
		return nil, &Error{File: file, Msg: "holds no setting (empty, or only comments): give its settings, or leave --config out"}
	}
	r := &decoder{file: file, check: check}
	r.mapping(doc.Content[0], reflect.ValueOf(cfg).Elem(), "")
	return r.notes, errors.Join(r.errs...)
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

// Keys are the yaml keys of struct type t, sorted, following ",inline"
// fields: what Decode accepts besides the aliases.
func Keys(t reflect.Type) []string { return sortedKeys(yamlKeys(t)) }

// Given maps the keys of struct type t that the YAML document data sets at
// its top level to the key as written there, a deprecated alias under its
// new key: what a file set, for a command to say where a value came from.
// A document that does not parse sets none (Decode says why).
func Given(data []byte, t reflect.Type) map[string]string {
	var doc map[string]any
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	aliases, out := Aliases(t), map[string]string{}
	for k := range doc {
		if to, ok := aliases[k]; ok {
			out[to] = k
		} else {
			out[k] = k
		}
	}
	return out
}

// Overridden returns, sorted, the keys of struct type t that the YAML
// document data sets and whose flags (the key with "-" for "_", as
// Overlay names them) are in set, the flags given: the file's values that
// the command line overrides, so that editing them changes nothing.
func Overridden(data []byte, t reflect.Type, set map[string]bool) []string {
	var keys []string
	for key := range Given(data, t) {
		if set[strings.ReplaceAll(key, "_", "-")] {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys
}

// Secrets returns, sorted, the keys of struct type t that the YAML
// document data sets to a secret (not to "" or nothing): a field tagged `secret:"true"` (a
// token, a key), or `secret:"url"` when its value is a URL with a
// password (postgres://user:PASSWORD@host/db). A command warns when a file
// readable by other users holds one.
func Secrets(data []byte, t reflect.Type) []string {
	var doc map[string]any
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	fields, aliases := yamlKeys(t), Aliases(t)
	var keys []string
	for k, v := range doc {
		key := k
		if to, ok := aliases[k]; ok {
			key = to
		}
		idx, ok := fields[key]
		if !ok {
			continue
		}
		if v == nil || v == "" { // set to nothing: no secret held
			continue
		}
		switch t.FieldByIndex(idx).Tag.Get("secret") {
		case "true":
			keys = append(keys, k)
		case "url":
			if s, ok := v.(string); ok {
				if u, err := url.Parse(s); err == nil && u.User != nil {
					if _, has := u.User.Password(); has {
						keys = append(keys, k)
					}
				}
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// SecretsGiven returns, sorted, the keys of struct type t tagged
// `secret:"true"` whose flag (the key with "-" for "_") is in set, the
// flags given: secrets on the command line, which other users of the
// host may read (ps, /proc/PID/cmdline) for as long as the process runs.
func SecretsGiven(t reflect.Type, set map[string]bool) []string {
	var keys []string
	for key, idx := range yamlKeys(t) {
		if t.FieldByIndex(idx).Tag.Get("secret") == "true" && set[strings.ReplaceAll(key, "_", "-")] {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys
}

// CheckTrusted refuses a config file another user could have changed: one
// that a user other than this one or root owns, or that others (or a
// group this process is not in) may write. Its hooks and commands
// (deploy_post_hook, alert_exec, dns_exec) run as this user, and a
// security trial's 0666 file, owned by nobody, had root's proxy run its
// hook; renewal settings files were already held to this. Nil on
// Windows, where modes say nothing of other users.
func CheckTrusted(file string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	if uid, ok := fileowner.UID(fi); ok && uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("%s: refused, owned by uid %d, not by this user (uid %d) or root, and the commands it names run as this user: check its contents, then chown it", file, uid, os.Geteuid())
	}
	if mode, who := fileowner.ChangeableByOthers(file); who != "" {
		return fmt.Errorf("%s: refused, mode %04o lets %s change it, and the commands it names run as this user: check its contents, then chmod go-w %s", file, mode, who, file)
	}
	return nil
}

// Exposure says who beyond this process may read a config file that
// holds secrets, and what makes it private while this process can still
// read it.
type Exposure struct {
	// Mode is the file's permission bits.
	Mode fs.FileMode
	// Who is "other users" (the file is world-readable) or "group G" (its
	// group, which is not this process's, may read it).
	Who string
	// Fix is the command that makes the file readable by this process's
	// user and group alone: chmod 600 for a file this user owns, else
	// chgrp to this process's group and chmod 640 (a root-owned file the
	// service reads through its group, as deploy/certkeeper.service
	// installs it, would be locked out by chmod 600).
	Fix string
}

// Exposed returns the Secrets of file, whose content is data, when users
// besides this process's may read it: a mode with the other read bit, or
// the group read bit when the file's group is not this process's
// (effective) group, which a service's config file is meant to share
// (install -m 0640 -g certkeeper). For root the group is not counted:
// root gave the file its group (sudo certkeeper proxy --check-config on
// the service's root:certkeeper 0640 file must not advise chmod 600, which
// would lock the service out). Not on Windows, where modes say nothing of
// other users.
func Exposed(file string, data []byte, t reflect.Type) ([]string, Exposure) {
	fi, err := os.Stat(file)
	if err != nil || runtime.GOOS == "windows" {
		return nil, Exposure{}
	}
	mode := fi.Mode().Perm()
	gid, hasGID := fileowner.GID(fi)
	var who string
	switch {
	case mode&0o004 != 0:
		who = "other users"
	case mode&0o040 != 0 && hasGID && !fileowner.InGroup(gid) && os.Geteuid() != 0:
		who = "group " + fileowner.GroupName(gid)
	default:
		return nil, Exposure{}
	}
	keys := Secrets(data, t)
	if len(keys) == 0 {
		return nil, Exposure{}
	}
	fix := "chmod 600 " + file
	if uid, ok := fileowner.UID(fi); ok && uid != os.Geteuid() {
		fix = "chgrp " + fileowner.GroupName(os.Getegid()) + " " + file + " && chmod 640 " + file
	}
	return keys, Exposure{Mode: mode, Who: who, Fix: fix}
}

// Aliases maps the deprecated config keys of struct type t (a field's
// `alias:"old_key"` tag) to their new keys, following ",inline" fields.
func Aliases(t reflect.Type) map[string]string {
	aliases := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			for old, to := range Aliases(f.Type) {
				aliases[old] = to
			}
			continue
		}
		if old := f.Tag.Get("alias"); old != "" && name != "" {
			aliases[old] = name
		}
	}
	return aliases
}

// mapping decodes the YAML mapping n into the struct v; path is the key
// path of n ("" at the top, "names[1]" below).
func (r *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
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
	aliases := Aliases(v.Type())
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
			if s := cmdline.Suggest(key, sortedKeys(keys)); s != "" {
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
		f := v.Type().FieldByIndex(idx)
		if form := f.Tag.Get("arg"); f.Type.Kind() == reflect.Slice && strings.Contains(form, "=") && r.pairsAsSettings(vn, full, key, form) {
			continue
		}
		r.value(vn, v.FieldByIndex(idx), full, key)
	}
}

// pairsAsSettings reports, and returns true for, a list of KEY=VALUE
// items (its field's `arg:"NAME=URL"` tag says form) given as NAME: URL
// settings, as a mapping or as list items, showing the list to write
// instead: route: ["a.example=127.0.0.1:8080"].
func (r *decoder) pairsAsSettings(n *yaml.Node, full, key, form string) bool {
	var items []string
	var at *yaml.Node
	add := func(m *yaml.Node) {
		if m.Kind == yaml.ScalarNode {
			items = append(items, strconv.Quote(m.Value))
			return
		}
		if at == nil && m.Kind == yaml.MappingNode {
			at = m
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			items = append(items, strconv.Quote(m.Content[i].Value+"="+m.Content[i+1].Value))
		}
	}
	if n.Kind == yaml.SequenceNode {
		for _, item := range n.Content {
			add(item)
		}
	} else {
		add(n)
	}
	if at == nil {
		return false
	}
	r.errorf(at, full, "want a list of %s items, not %s settings: write %s: [%s]",
		form, strings.Replace(form, "=", ": ", 1), key, strings.Join(items, ", "))
	return true
}

var durationType = reflect.TypeOf(time.Duration(0))

// value decodes n into v. full is the key path for messages, key the last
// key (which picks check's check).
func (r *decoder) value(n *yaml.Node, v reflect.Value, full, key string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with nothing: the default
	}
	switch {
	case v.Kind() == reflect.Slice:
		r.list(n, v, full, key)
		return
	case v.Kind() == reflect.Struct:
		r.mapping(n, v, full)
		return
	case v.Kind() == reflect.Map:
		r.stringMap(n, v, full)
		return
	case n.Kind != yaml.ScalarNode:
		r.errorf(n, full, "want a single value, not a %s", nodeKind(n))
		return
	}
	r.scalar(n, v, full, key)
}

// list decodes n into the slice v: a sequence item by item, a single
// value as a one-item list.
func (r *decoder) list(n *yaml.Node, v reflect.Value, full, key string) {
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
}

// scalar decodes the scalar n into v: a duration, bool, int or string.
func (r *decoder) scalar(n *yaml.Node, v reflect.Value, full, key string) {
	switch {
	case v.Type() == durationType:
		d, err := cmdline.ParseDuration(n.Value)
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
		if n.Value != "" && r.check != nil {
			if err := r.check(key, n.Value); err != nil {
				r.errorf(n, full, "%v", err)
				return
			}
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
func (r *decoder) stringMap(n *yaml.Node, v reflect.Value, full string) {
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

// sortedKeys are m's keys in order.
func sortedKeys(m map[string][]int) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Overlay lays the command-line flags that were set over a configuration
// read from a file, so that a flag wins over the file's key and the file
// over a flag's default. dst and flags are pointers to the same struct
// type: dst holds what the file gave, flags what the flag set parsed.
// Each field's flag is named by its yaml key with "-" for "_" (key_type,
// --key-type); set holds the names of the flags that were given. A set
// flag replaces the file's value, except that a map's entries are merged
// (the flag's win). Fields of ",inline" structs are walked in turn;
// fields without a key, or whose flag is never given, keep the file's
// value.
//
// withDefault names flags whose value, the flag's default when it was
// not given, also applies when the file leaves the field zero (--listen
// has a default address; --allow has none).
func Overlay(dst, flags any, set map[string]bool, withDefault ...string) {
	overlay(reflect.ValueOf(dst).Elem(), reflect.ValueOf(flags).Elem(), set, withDefault)
}

func overlay(dst, src reflect.Value, set map[string]bool, withDefault []string) {
	t := dst.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		d, s := dst.Field(i), src.Field(i)
		flag := strings.ReplaceAll(key, "_", "-")
		switch {
		case opts == "inline" && f.Type.Kind() == reflect.Struct:
			overlay(d, s, set, withDefault)
		case !f.IsExported() || key == "" || key == "-":
		case set[flag] && d.Kind() == reflect.Map:
			m := reflect.MakeMap(d.Type())
			for _, from := range []reflect.Value{d, s} {
				for it := from.MapRange(); it.Next(); {
					m.SetMapIndex(it.Key(), it.Value())
				}
			}
			d.Set(m)
		case set[flag] || d.IsZero() && slices.Contains(withDefault, flag):
			d.Set(s)
		}
	}
}

// Changed returns the yaml keys whose values differ between old and next,
// pointers to the same struct type, in the struct's order: after a reload,
// the settings that changed. Fields of ",inline" structs are walked in
// turn; fields without a key are not compared. An empty list or map
// equals an absent one. A caller names the keys it applies on reload and
// tells the operator about the others.
func Changed(old, next any) []string {
	var keys []string
	for _, c := range Changes(old, next) {
		keys = append(keys, c.Key)
	}
	return keys
}

// A Change is a setting whose value differs between two configurations.
type Change struct {
	Key string
	// Added and Removed are set for a list of strings: the entries only
	// the new configuration has, and those only the old one has, in
	// their order. Both are empty for a list that only changed order.
	Added, Removed []string
}

// Changes is Changed with, for each list of strings, the entries added
// and removed: what a reload tells the operator it changed.
func Changes(old, next any) []Change {
	return changes(reflect.ValueOf(old).Elem(), reflect.ValueOf(next).Elem(), nil)
}

func changes(a, b reflect.Value, cs []Change) []Change {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		x, y := a.Field(i), b.Field(i)
		switch {
		case opts == "inline" && f.Type.Kind() == reflect.Struct:
			cs = changes(x, y, cs)
		case !f.IsExported() || key == "" || key == "-":
		case (x.Kind() == reflect.Slice || x.Kind() == reflect.Map) && x.Len() == 0 && y.Len() == 0:
		case !reflect.DeepEqual(x.Interface(), y.Interface()):
			c := Change{Key: key}
			if old, ok := x.Interface().([]string); ok {
				next := y.Interface().([]string)
				c.Added, c.Removed = missing(next, old), missing(old, next)
			}
			cs = append(cs, c)
		}
	}
	return cs
}

// Only is the changes of cs to the given keys, in cs's order: a reload
// logs those it applies apart from those that take a restart.
func Only(cs []Change, keys []string) []Change {
	var out []Change
	for _, c := range cs {
		if slices.Contains(keys, c.Key) {
			out = append(out, c)
		}
	}
	return out
}

// redactAll is list with each entry's URL, whole or after "NAME=",
// through redact.URL.
func redactAll(list []string) []string {
	more := len(list) - maxLogged // a reload that adds ten thousand names logs a line, not a megabyte
	if more > 0 {
		list = list[:maxLogged]
	}
	out := make([]string, len(list), len(list)+1)
	for i, s := range list {
		if name, v, ok := strings.Cut(s, "="); ok && !strings.Contains(name, ":") {
			out[i] = name + "=" + redact.URL(v)
		} else {
			out[i] = redact.URL(s)
		}
	}
	if more > 0 {
		out = append(out, fmt.Sprintf("… %d more", more))
	}
	return out
}

// maxLogged is how many entries of a list LogAttrs shows.
const maxLogged = 20

// missing is the entries of a that b lacks, in a's order. A set, not a
// scan of b per entry: an allow list may hold many thousands of names.
func missing(a, b []string) []string {
	in := make(map[string]struct{}, len(b))
	for _, s := range b {
		in[s] = struct{}{}
	}
	var m []string
	for _, s := range a {
		if _, ok := in[s]; !ok {
			m = append(m, s)
		}
	}
	return m
}

// LogAttrs are cs as log attributes: KEY_added and KEY_removed for a list
// of strings (allow_added=[b.test]), each URL in them, or after a "NAME="
// (route_added=[a.test=http://...]), through redact.URL; and "changed"
// naming the other keys (their values are not shown: an ask URL may hold
// a token). None when cs is empty.
func LogAttrs(cs []Change) []slog.Attr {
	var attrs []slog.Attr
	var other []string
	for _, c := range cs {
		if len(c.Added) > 0 {
			attrs = append(attrs, slog.Any(c.Key+"_added", redactAll(c.Added)))
		}
		if len(c.Removed) > 0 {
			attrs = append(attrs, slog.Any(c.Key+"_removed", redactAll(c.Removed)))
		}
		if len(c.Added)+len(c.Removed) == 0 {
			other = append(other, c.Key)
		}
	}
	if len(other) > 0 {
		attrs = append(attrs, slog.Any("changed", other))
	}
	return attrs
}
