package renew

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
)

// A command takes the settings as flags: each key is the flag of the same
// name with "-" for "_" (tls_alpn_addr is --tls-alpn-addr). FromFlags and
// ApplyFlags map between Settings and a flag.FlagSet so.

// FlagOf is the flag a settings key comes from, without its dashes.
func FlagOf(key string) string { return strings.ReplaceAll(key, "_", "-") }

// HookKeys are the settings that name hooks (Hooks runs them), not flags
// of an issuer.
func HookKeys() []string { return []string{"deploy_hook", "pre_hook", "post_hook"} }

// StorageKeys are the settings that say where a certificate's account
// (and local CA) is kept: one storage serves a whole run, so a command
// opens it (RememberedStorage) rather than each certificate's issuer.
func StorageKeys() []string { return []string{"storage", "storage_key_file", "storage_password_file"} }

// StateKeys are the settings that record a certificate's state (revoked:
// MarkRevoked), which no flag sets.
func StateKeys() []string { return []string{"revoked"} }

// FlagError is a flag whose value is not a valid setting.
type FlagError struct {
	Flag string // the flag's name, without dashes
	Err  error
}

func (e *FlagError) Error() string { return "--" + e.Flag + ": " + e.Err.Error() }

func (e *FlagError) Unwrap() error { return e.Err }

// FromFlags returns the settings given on fs's command line (fs parsed),
// and those whose flags are named in always even at their defaults.
// values returns a repeatable flag's values, one setting line each; nil,
// or a nil result, means the flag's String. Relative paths are made
// absolute (Absolute), as a renewal runs from another directory. A value
// Set refuses is a *FlagError.
func FromFlags(fs *flag.FlagSet, values func(*flag.Flag) []string, always ...string) (Settings, error) {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var s Settings
	for _, key := range SettingsKeys() {
		name := FlagOf(key)
		fl := fs.Lookup(name)
		if fl == nil || !set[name] && !slices.Contains(always, name) {
			continue
		}
		var vs []string
		if values != nil {
			vs = values(fl)
		}
		if vs == nil {
			vs = []string{fl.Value.String()}
		}
		for _, v := range vs {
			if err := s.Set(key, v); err != nil {
				return Settings{}, &FlagError{Flag: name, Err: err}
			}
		}
	}
	s.Absolute()
	return s, nil
}

// ApplyFlags sets the flags of fs that s's settings come from, but those
// of the keys in skip (HookKeys, for an issuer's flags). The error names
// every setting fs refused, as "key = value: why".
func (s Settings) ApplyFlags(fs *flag.FlagSet, skip ...string) error {
	var err error
	s.Values(func(key, value string) {
		if slices.Contains(skip, key) || slices.Contains(StateKeys(), key) {
			return
		}
		if e := fs.Set(FlagOf(key), value); e != nil {
			err = errors.Join(err, fmt.Errorf("%s = %s: %w", key, value, e))
		}
	})
	return err
}

// ApplyUnset sets the flags of fs that the settings keys come from to
// s's values, but those given on fs's command line (fs parsed) and those
// s does not hold: remembered settings fill in what a command line left
// out, and a flag given wins. The error is ApplyFlags's.
func (s Settings) ApplyUnset(fs *flag.FlagSet, keys ...string) error {
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	var unset Settings
	var err error
	s.Values(func(key, value string) {
		if slices.Contains(keys, key) && !given[FlagOf(key)] {
			err = errors.Join(err, unset.Set(key, value))
		}
	})
	return errors.Join(err, unset.ApplyFlags(fs))
}
