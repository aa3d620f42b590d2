package dnsprovider

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/certkeeper/certkeeper/solver/dns01"
)

// Flags names the command-line flags a program takes a DNS provider and
// its settings with, so that Choose can say what is wrong in the words the
// user typed. The certkeeper command's are CommandFlags.
type Flags struct {
	// Provider is the flag naming the provider ("--dns").
	Provider string
	// Setting and SettingFile are the flags giving a compiled-in
	// provider's settings as NAME=VALUE and NAME=FILE.
	Setting, SettingFile string
	// SettingFileKey is the config key SettingFile also has, named in the
	// advice to give a secret from a file; empty: none.
	SettingFileKey string
	// Builtin maps the built-in providers' settings (Builtin) to the
	// flags of their own they are given with.
	Builtin map[string]string
}

// CommandFlags are the flags of the certkeeper command (docs/dns.md).
func CommandFlags() Flags {
	return Flags{Provider: "--dns", Setting: "--dns-setting", SettingFile: "--dns-setting-file", SettingFileKey: "dns_setting_file",
		Builtin: map[string]string{"server": "--dns-server", "tsig_key": "--tsig-key", "tsig_key_file": "--tsig-key-file",
			"api_url": "--dns-api-url", "api_key_file": "--dns-api-key-file", "program": "--dns-exec", "mode": "--dns-exec-mode"}}
}

// UsageError is a provider or its settings given wrongly on the command
// line (a program exits as for bad usage). It never quotes a secret.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Choose builds the provider called name, from Builtin() and extra (the
// providers compiled in). A built-in provider is built from builtin, its
// settings as given with its own flags, and takes no values or files; any
// other is built with Build(values, files). A provider or setting given
// wrongly is a *UsageError naming fl's flags; an unreadable file or a
// provider that fails otherwise is an ordinary error.
func (fl Flags) Choose(name string, builtin Settings, values, files map[string]string, extra []Provider) (dns01.Provider, error) {
	nb := len(Builtin())
	all := append(Builtin(), extra...)
	i := slices.IndexFunc(all, func(p Provider) bool { return p.Name == name })
	if i < 0 {
		var names []string
		for _, p := range all {
			names = append(names, p.Name)
		}
		return nil, usagef("%s %q: use %s or %s", fl.Provider, name, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
	}
	p := all[i]
	if i < nb {
		for flag, given := range map[string]map[string]string{fl.SettingFile: files, fl.Setting: values} {
			for name := range given {
				return nil, usagef("%s %s: %s %s takes no %s; its settings are flags of their own (see --help)", flag, name, fl.Provider, p.Name, flag)
			}
		}
		prov, err := p.New(builtin)
		return prov, fl.builtinError(err)
	}
	prov, err := p.Build(values, files)
	var serr *SettingError
	if err != nil && !errors.As(err, &serr) {
		return nil, fmt.Errorf("%s %s: %w", fl.Provider, p.Name, err)
	}
	return prov, fl.settingError(p, err)
}

// builtinError says a built-in provider's error in terms of its flags.
func (fl Flags) builtinError(err error) error {
	var e *SettingError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &e):
		return usagef("%v", err)
	case e.Problem == Missing && e.Other != "":
		return usagef("%s %s needs %s or %s (%s)", fl.Provider, e.Provider, fl.Builtin[e.Setting], fl.Builtin[e.Other], e.Help)
	case e.Problem == Missing:
		return usagef("%s %s needs %s (%s)", fl.Provider, e.Provider, fl.Builtin[e.Setting], e.Help)
	case e.Problem == GivenTwice:
		return usagef("give %s or %s, not both", fl.Builtin[e.Setting], fl.Builtin[e.Other])
	case e.Problem == BadFile:
		return fmt.Errorf("%s: %w", fl.Builtin[e.Setting], e.Err)
	}
	return usagef("%s %v", fl.Builtin[e.Setting], e.Err)
}

// settingError says a compiled-in provider's setting error in terms of
// the Setting and SettingFile flags. A secret is never quoted.
func (fl Flags) settingError(p Provider, err error) error {
	var e *SettingError
	if !errors.As(err, &e) {
		return err
	}
	switch e.Problem {
	case Unknown:
		var names []string
		for _, s := range p.Settings {
			names = append(names, s.Name)
		}
		return usagef("%s %s: %s %s takes %s", fl.Setting, e.Setting, fl.Provider, p.Name, strings.Join(names, ", "))
	case SecretValue:
		key := ""
		if fl.SettingFileKey != "" {
			key = " (" + fl.SettingFileKey + ")"
		}
		return usagef("%s %s: a secret, so not on the command line or in the config file: give %s %s=FILE%s", fl.Setting, e.Setting, fl.SettingFile, e.Setting, key)
	case GivenTwice:
		return usagef("%s %s and %s %s: give one", fl.Setting, e.Setting, fl.SettingFile, e.Setting)
	case BadFile:
		return fmt.Errorf("%s %s: %w", fl.SettingFile, e.Setting, e.Err)
	case Missing:
		how := fl.Setting + " " + e.Setting + "=VALUE"
		if i := slices.IndexFunc(p.Settings, func(s Setting) bool { return s.Name == e.Setting }); i >= 0 && p.Settings[i].Secret {
			how = fl.SettingFile + " " + e.Setting + "=FILE"
		}
		return usagef("%s %s needs %s (%s)", fl.Provider, p.Name, how, e.Help)
	}
	return err
}

// WriteHelp lists the providers ps and their settings, as the --help of
// a command that takes fl.Provider ends; nothing if ps is empty.
func (fl Flags) WriteHelp(w io.Writer, ps []Provider) {
	if len(ps) == 0 {
		return
	}
	fmt.Fprintf(w, "\nDNS providers compiled in (%s NAME; settings with %s NAME=VALUE, secret ones\nwith %s NAME=FILE):\n", fl.Provider, fl.Setting, fl.SettingFile)
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
