package rfc2136

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// bindKey matches a BIND key clause, as tsig-keygen and named.conf write it.
var bindKey = regexp.MustCompile(`(?s)key\s+"?([^"\s{]+)"?\s*\{.*?algorithm\s+"?([a-zA-Z0-9-]+)"?\s*;.*?secret\s+"([^"]+)"\s*;`)

// ReadKeyFile reads a TSIG key file, NAME:ALG:SECRET on one line or a BIND
// key clause (key "NAME" { algorithm ALG; secret "SECRET"; };, as
// tsig-keygen writes it), and returns the key as NAME:ALG:SECRET for
// ParseKey. The secret is never put in an error: the file is named, not
// quoted. A file that cannot be read returns os.ReadFile's error.
func ReadKeyFile(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	if m := bindKey.FindSubmatch(data); m != nil {
		return string(m[1]) + ":" + string(m[2]) + ":" + string(m[3]), nil
	}
	s := strings.TrimSpace(string(data))
	if strings.Count(s, ":") >= 2 && !strings.ContainsAny(s, "\n{") {
		return s, nil
	}
	return "", fmt.Errorf("%s: want NAME:ALG:SECRET or a BIND key clause (key \"NAME\" { algorithm ...; secret \"...\"; };)", file)
}
