package rfc2136

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// bindKey matches a BIND key clause, as tsig-keygen and named.conf write it.
var bindKey = regexp.MustCompile(`(?s)key\s+"?([^"\s{]+)"?\s*\{.*?algorithm\s+"?([a-zA-Z0-9-]+)"?\s*;.*?secret\s+"([^"]+)"\s*;`)

// ReadKeyFile reads a TSIG key file and returns the key as NAME:ALG:SECRET
// for ParseKey. The file holds one of:
//
//   - NAME:ALG:SECRET on one line, with blank lines and comment lines
//     (first non-space character # or ;) around it;
//   - a BIND key clause (key "NAME" { algorithm ALG; secret "SECRET"; };,
//     as tsig-keygen writes it), one only;
//   - a Knot key section with one entry (key: - id: NAME, algorithm: ALG,
//     secret: SECRET; as keymgr -t NAME writes it, its comment line
//     included).
//
// The secret is never put in an error: the file is named, not quoted. A
// file that cannot be read returns os.ReadFile's error.
func ReadKeyFile(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	if all := bindKey.FindAllSubmatch(data, -1); len(all) == 1 {
		m := all[0]
		return string(m[1]) + ":" + string(m[2]) + ":" + string(m[3]), nil
	} else if len(all) > 1 {
		// A named.conf include of every key, which a trial tried first:
		// the first key is not the one meant more often than not.
		var names []string
		for _, m := range all {
			names = append(names, string(m[1]))
		}
		return "", fmt.Errorf("%s holds %d BIND key clauses (%s): want one key per file: copy the clause of the key "+
			"the zone's update-policy grants into a file of its own", file, len(all), strings.Join(names, ", "))
	}
	var lines []string
	for l := range strings.Lines(string(data)) {
		if l = strings.TrimSpace(l); l != "" && l[0] != '#' && l[0] != ';' {
			lines = append(lines, l)
		}
	}
	switch {
	case len(lines) > 0 && lines[0] == "key:":
		return knotKey(file, lines[1:])
	case len(lines) == 1 && strings.Count(lines[0], ":") >= 2 && !strings.ContainsAny(lines[0], "{"):
		return lines[0], nil
	}
	return "", fmt.Errorf("%s: want NAME:ALG:SECRET, a BIND key clause (key \"NAME\" { algorithm ...; secret \"...\"; };) "+
		"or a Knot key section (key: - id: NAME, algorithm: ..., secret: ..., as keymgr -t NAME writes)", file)
}

// knotKey returns as NAME:ALG:SECRET the one entry of a Knot key section,
// lines being those after "key:" (comments and blank lines left out):
//
//   - id: NAME
//     algorithm: ALG
//     secret: SECRET
func knotKey(file string, lines []string) (string, error) {
	var keys []map[string]string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "-"); ok {
			keys = append(keys, map[string]string{})
			l = strings.TrimSpace(rest)
		}
		field, value, ok := strings.Cut(l, ":")
		if !ok || len(keys) == 0 {
			return "", fmt.Errorf("%s: a Knot key section holds entries of id, algorithm and secret (key: - id: NAME ...), "+
				"as keymgr -t NAME writes", file)
		}
		keys[len(keys)-1][strings.TrimSpace(field)] = strings.Trim(strings.TrimSpace(value), `"'`)
	}
	switch len(keys) {
	case 0:
		return "", fmt.Errorf("%s: the Knot key section has no entry (- id: NAME ...)", file)
	case 1:
	default:
		return "", fmt.Errorf("%s: the Knot key section has %d keys: want one key per file", file, len(keys))
	}
	k := keys[0]
	for _, f := range []string{"id", "algorithm", "secret"} {
		if k[f] == "" {
			return "", fmt.Errorf("%s: the Knot key entry has no %s", file, f)
		}
	}
	return k["id"] + ":" + k["algorithm"] + ":" + k["secret"], nil
}
