package renew

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/certkeeper/certkeeper/certfile"
)

// Previous is what a directory held for a certificate before it was
// issued again under the same name (cert issue -d NAME once more): the
// names of its certificate and its renewal settings. Changes says what
// the new issuance replaced, which would otherwise go unnoticed: a name
// dropped from the certificate, a challenge or account changed for its
// renewals.
type Previous struct {
	Names    []string
	Settings Settings
}

// ReadPrevious returns what dir holds for the certificate named name, or
// nil when it holds none (or none that can be read: there is nothing to
// compare with then).
func ReadPrevious(dir certfile.Dir, name string) *Previous {
	_, chain, err := dir.Read(name)
	if err != nil {
		return nil
	}
	p := &Previous{Names: certfile.Names(chain[0], name)}
	if path, err := SettingsPath(dir, name); err == nil {
		p.Settings, _ = LoadSettings(path) // none, or unreadable: compared as none
	}
	return p
}

// Changes describes what a certificate for names, renewed with s,
// replaces of p: the names it no longer covers and each setting that
// changed ("challenge tls-alpn-01 -> http-01"), or "" when nothing did
// (or p is nil).
func (p *Previous) Changes(names []string, s Settings) string {
	if p == nil {
		return ""
	}
	var parts []string
	var dropped []string
	for _, n := range p.Names {
		if !slices.Contains(names, n) {
			dropped = append(dropped, n)
		}
	}
	if len(dropped) > 0 {
		parts = append(parts, "no longer for "+strings.Join(dropped, ", "))
	}
	before, after := p.Settings.values(), s.values()
	var changed []string
	for _, key := range SettingsKeys() {
		if b, a := before[key], after[key]; b != a {
			changed = append(changed, fmt.Sprintf("%s %s -> %s", key, orNone(b), orNone(a)))
		}
	}
	if len(changed) > 0 {
		parts = append(parts, "renewal settings changed: "+strings.Join(changed, ", "))
	}
	return strings.Join(parts, "; ")
}

// values maps each key set in s to its value, a list's items joined by
// spaces.
func (s Settings) values() map[string]string {
	m := map[string]string{}
	s.Values(func(key, value string) {
		if m[key] != "" {
			value = m[key] + " " + value
		}
		m[key] = value
	})
	return m
}

func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// MarkRevoked notes in the renewal settings of the pair whose certificate
// file is certFile (DIR/certs/NAME.pem) that its certificate was revoked
// for reason (an RFC 5280 name), so that the next Renewer run replaces it,
// due or not, and with a new key after keyCompromise. It reports whether
// certFile is such a pair's (a certificate file elsewhere is left alone).
func MarkRevoked(certFile, reason string) (bool, error) {
	certs := filepath.Dir(certFile)
	name := strings.TrimSuffix(filepath.Base(certFile), ".pem")
	if filepath.Base(certs) != "certs" || name == filepath.Base(certFile) {
		return false, nil
	}
	dir := certfile.Dir(filepath.Dir(certs))
	if _, err := os.Stat(filepath.Join(string(dir), "private", name+".key")); err != nil {
		return false, nil // not a pair: no key to renew with
	}
	path := settingsPathBase(dir, name)
	s, err := LoadSettings(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	s.Revoked = reason
	return true, SaveSettings(path, s)
}
