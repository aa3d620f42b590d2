package dnsprovider

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/certkeeper/certkeeper/solver/dns01"
)

// Problem is what is wrong with a setting, in a SettingError.
type Problem int

// The problems Build and the built-in providers report.
const (
	// Unknown: the provider has no setting of that name.
	Unknown Problem = iota + 1
	// SecretValue: a Secret setting was given as a value, not from a file.
	SecretValue
	// GivenTwice: the setting was given as a value and from a file, or
	// (built-in providers) with the setting it excludes, Other.
	GivenTwice
	// Missing: a Required setting was not given.
	Missing
	// Invalid: the value is wrong; Err says how.
	Invalid
	// BadFile: the setting's file could not be read, or does not hold
	// what it should; Err says which.
	BadFile
)

// SettingError is a setting of Provider given wrongly. It never quotes a
// value: a setting may be a secret.
type SettingError struct {
	Provider string
	Setting  string
	// Other is the setting Setting was given together with, for a
	// GivenTwice between two settings, or the one that may stand in for
	// it, for a Missing one.
	Other   string
	Problem Problem
	// Help is the setting's Help, for a Missing one.
	Help string
	// Err is the cause, for Invalid and BadFile.
	Err error
}

func (e *SettingError) Error() string {
	prefix := "DNS provider " + e.Provider + ": setting " + e.Setting
	switch e.Problem {
	case Unknown:
		return prefix + ": unknown"
	case SecretValue:
		return prefix + ": a secret, so it is taken only from a file"
	case GivenTwice:
		if e.Other != "" {
			return prefix + " and " + e.Other + ": give one"
		}
		return prefix + ": given as a value and from a file: give one"
	case Missing:
		if e.Other != "" {
			prefix += " or " + e.Other
		}
		return prefix + " is required (" + e.Help + ")"
	}
	return fmt.Sprintf("%s: %v", prefix, e.Err)
}

func (e *SettingError) Unwrap() error { return e.Err }

// Build checks the settings given against p.Settings, reads those given
// as files, and calls p.New. values are settings given as they are,
// files settings to read from a file (its content trimmed of surrounding
// white space). An unknown setting, a Secret one in values, one in both,
// an unreadable file or a Required setting not given is a *SettingError;
// p.New's error is returned as it is.
func (p Provider) Build(values, files map[string]string) (dns01.Provider, error) {
	known := func(name string) (Setting, error) {
		i := slices.IndexFunc(p.Settings, func(s Setting) bool { return s.Name == name })
		if i < 0 {
			return Setting{}, &SettingError{Provider: p.Name, Setting: name, Problem: Unknown}
		}
		return p.Settings[i], nil
	}
	settings := Settings{}
	for name, value := range values {
		s, err := known(name)
		if err != nil {
			return nil, err
		}
		if s.Secret {
			return nil, &SettingError{Provider: p.Name, Setting: name, Problem: SecretValue}
		}
		settings[name] = value
	}
	for name, file := range files {
		if _, err := known(name); err != nil {
			return nil, err
		}
		if _, ok := settings[name]; ok {
			return nil, &SettingError{Provider: p.Name, Setting: name, Problem: GivenTwice}
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, &SettingError{Provider: p.Name, Setting: name, Problem: BadFile, Err: err}
		}
		settings[name] = strings.TrimSpace(string(data))
	}
	for _, s := range p.Settings {
		if _, ok := settings[s.Name]; !ok && s.Required {
			return nil, &SettingError{Provider: p.Name, Setting: s.Name, Problem: Missing, Help: s.Help}
		}
	}
	return p.New(settings)
}
