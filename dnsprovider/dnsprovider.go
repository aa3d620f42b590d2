// Package dnsprovider describes the DNS providers the certkeeper command
// can set dns-01 records with, so that a program can build certkeeper with
// one more: any libdns provider, in the way xcaddy builds Caddy with
// plugins. docs/dns.md ("Building certkeeper with another provider") has
// the whole recipe:
//
//	func main() {
//		cli.Main(cli.WithDNSProvider(dnsprovider.Provider{
//			Name:     "cloudflare",
//			Help:     "Cloudflare's API (github.com/libdns/cloudflare)",
//			Settings: []dnsprovider.Setting{{Name: "api_token", Help: "an API token with Zone.DNS edit", Secret: true, Required: true}},
//			New:      dnsprovider.JSON[cloudflare.Provider](),
//		}))
//	}
//
// The command then takes --dns cloudflare and the provider's settings
// from --dns-setting NAME=VALUE, --dns-setting-file NAME=FILE, or the
// config keys dns_setting and dns_setting_file. A Secret setting is taken
// only from a file, never from the command line or the config file itself.
//
// A program with flags of its own builds the provider a user names with
// Flags.Choose, which says what is wrong in terms of those flags, and
// lists the providers in its help with Flags.WriteHelp.
//
// There is no global registry: a Provider is a value handed to cli.Main.
package dnsprovider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/certkeeper/certkeeper/solver/dns01"
)

// Provider is one DNS provider the command can build by name.
type Provider struct {
	// Name is what --dns takes: lower case letters, digits and '-'. It
	// must not be one of the built-in providers' (rfc2136, powerdns, exec).
	Name string
	// Help is one line for --help: what the provider talks to.
	Help string
	// Settings are the names New reads. The command refuses any other
	// name, and a Required one that is missing, before New runs.
	Settings []Setting
	// New builds the provider from its settings: each name given, with
	// its value (a secret's read from its file and trimmed of surrounding
	// white space). Its error should name the setting at fault.
	New func(s Settings) (dns01.Provider, error)
}

// Setting is one value a Provider needs.
type Setting struct {
	// Name is the key in --dns-setting NAME=VALUE and dns_setting.
	Name string
	// Help is one line for --help.
	Help string
	// Secret means the value is taken only from a file
	// (--dns-setting-file, dns_setting_file) and never printed: an API
	// key or token, a password.
	Secret bool
	// Required means the provider cannot work without it.
	Required bool
}

// Settings are the values given for a Provider's settings, by name.
type Settings map[string]string

// Validate reports whether p can be registered: a name, a New, and
// settings with distinct names.
func (p Provider) Validate() error {
	if p.Name == "" || strings.Trim(p.Name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return fmt.Errorf("DNS provider name %q: use lower case letters, digits and '-'", p.Name)
	}
	if p.New == nil {
		return fmt.Errorf("DNS provider %s: New is nil", p.Name)
	}
	seen := map[string]bool{}
	for _, s := range p.Settings {
		if s.Name == "" || seen[s.Name] {
			return fmt.Errorf("DNS provider %s: setting %q is empty or given twice", p.Name, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// JSON returns a New for a provider configured by the JSON fields of a
// struct, as most libdns providers are: each setting is the field with
// that JSON name, a string for string fields and a JSON value (123, true,
// ["a"]) for the others. The zero T is the starting point; *T must be the
// dns01.Provider, as it is for libdns providers.
func JSON[T any, PT interface {
	*T
	dns01.Provider
}]() func(Settings) (dns01.Provider, error) {
	return func(s Settings) (dns01.Provider, error) {
		p := PT(new(T))
		kinds := jsonKinds(reflect.TypeFor[T]())
		var obj bytes.Buffer
		obj.WriteByte('{')
		first := true
		for name, value := range s {
			if !first {
				obj.WriteByte(',')
			}
			first = false
			k, _ := json.Marshal(name)
			obj.Write(k)
			obj.WriteByte(':')
			if kind, ok := kinds[name]; ok && kind != reflect.String {
				if !json.Valid([]byte(value)) {
					return nil, fmt.Errorf("setting %s: want a JSON %s value, not %q", name, kind, value)
				}
				obj.WriteString(value)
			} else {
				v, _ := json.Marshal(value)
				obj.Write(v)
			}
		}
		obj.WriteByte('}')
		dec := json.NewDecoder(&obj)
		dec.DisallowUnknownFields()
		if err := dec.Decode(p); err != nil {
			// The error names a field or a type, never the value: a
			// setting may be a secret.
			return nil, fmt.Errorf("settings of %T: %w", p, err)
		}
		return p, nil
	}
}

// jsonKinds maps the JSON names of t's exported fields to their kinds.
func jsonKinds(t reflect.Type) map[string]reflect.Kind {
	kinds := map[string]reflect.Kind{}
	if t.Kind() != reflect.Struct {
		return kinds
	}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			if n, _, _ := strings.Cut(tag, ","); n == "-" {
				continue
			} else if n != "" {
				name = n
			}
		}
		kinds[name] = f.Type.Kind()
	}
	return kinds
}
