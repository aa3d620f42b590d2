package cmdline

import (
	"flag"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
)

// TestFromEnv: unset flags come from CERTKEEPER_ variables, a repeatable
// one word by word; the command line wins; one-letter flags, deprecated
// names, reserved variables and empty ones are not read; a bad value
// names the variable.
func TestFromEnv(t *testing.T) {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	var allow Strings
	fs.Var(&allow, "allow", "")
	backend := fs.String("backend", "", "")
	storage := fs.String("storage", "", "")
	maxConns := fs.Int("max-conns", 10, "")
	noAuth := fs.Bool("no-auth", false, "")
	certFile := fs.String("cert-file", "", "")
	short := fs.String("d", "", "")
	logLevel := fs.String("log-level", "", "")
	validFor := fs.String("valid-for", "", "")
	Deprecated(fs, "days", "valid-for", nil)
	if _, err := Parse(fs, []string{"--storage", "/flag"}, false, io.Discard); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CERTKEEPER_ALLOW":     " a.example  *.b.example ",
		"CERTKEEPER_BACKEND":   "http://127.0.0.1:8080",
		"CERTKEEPER_STORAGE":   "/env",
		"CERTKEEPER_MAX_CONNS": "5",
		"CERTKEEPER_NO_AUTH":   "true",
		"CERTKEEPER_CERT_FILE": "/hook/cert.pem",
		"CERTKEEPER_D":         "x.example",
		"CERTKEEPER_LOG_LEVEL": "",
		"CERTKEEPER_DAYS":      "30",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	used, err := FromEnv(fs, "CERTKEEPER_", lookup, []string{"CERTKEEPER_CERT_FILE"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(allow, " "); got != "a.example *.b.example" {
		t.Errorf("--allow = %q, want each word of $CERTKEEPER_ALLOW", got)
	}
	if *backend != "http://127.0.0.1:8080" || *maxConns != 5 || !*noAuth {
		t.Errorf("--backend %q, --max-conns %d, --no-auth %v: want the variables' values", *backend, *maxConns, *noAuth)
	}
	if *storage != "/flag" || *certFile != "" || *short != "" || *logLevel != "" || *validFor != "" {
		t.Errorf("--storage %q (want the command line's), --cert-file %q, -d %q, --log-level %q, --valid-for %q (want none)",
			*storage, *certFile, *short, *logLevel, *validFor)
	}
	if got := slices.Sorted(maps.Keys(used)); !slices.Equal(got, []string{"allow", "backend", "max-conns", "no-auth"}) || used["max-conns"] != "CERTKEEPER_MAX_CONNS" {
		t.Errorf("used %v", used)
	}
	if !Given(fs, "backend") {
		t.Error("a flag set from the environment is not given (the config file would win over it)")
	}

	fs = flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.Int("max-conns", 10, "")
	_, err = FromEnv(fs, "CERTKEEPER_", func(string) (string, bool) { return "lots", true }, nil)
	if err == nil || !strings.Contains(err.Error(), `$CERTKEEPER_MAX_CONNS: invalid value "lots" for --max-conns`) {
		t.Errorf("a bad value: %v, want the variable named", err)
	}
}
