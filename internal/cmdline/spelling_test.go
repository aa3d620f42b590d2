package cmdline

import (
	"bytes"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

// TestSpellings: other tools' spellings set certkeeper's flags (converted
// or fixed), one that asks for nothing is taken and ignored, each with a
// note; certbot's "--webroot -w DIR" gives DIR to --webroot; spellings
// stay out of --help; one whose flag the set lacks is not registered.
func TestSpellings(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	email, ca, keyType, webroot := fs.String("email", "", "`EMAIL`"), fs.String("ca", "letsencrypt", "`URL`"),
		fs.String("key-type", "", "`TYPE`"), fs.String("webroot", "", "`DIR`")
	AddSpellings(fs, []Spelling{
		{Tool: "certbot", Name: "m", To: "email"},
		{Tool: "certbot", Name: "staging", To: "ca", Fixed: "staging"},
		{Tool: "certbot", Name: "rsa-key-size", To: "key-type", Convert: func(v string) string { return "rsa" + v }},
		{Tool: "certbot", Name: "agree-tos", Why: "it never prompts"},
		{Tool: "certbot", Name: "w", To: "webroot"},
		{Tool: "certbot", Name: "email", To: "ca"},  // a name fs has: left alone
		{Tool: "lego", Name: "path", To: "storage"}, // fs has no --storage: not registered
	})
	if fs.Lookup("path") != nil {
		t.Error("a spelling of a flag the set lacks was registered")
	}
	var notes bytes.Buffer
	args := strings.Fields("-m me@a.example --staging --agree-tos --rsa-key-size 4096 --webroot -w /var/www arg")
	rest, err := Parse(fs, args, false, &notes)
	if err != nil {
		t.Fatal(err)
	}
	if *email != "me@a.example" || *ca != "staging" || *keyType != "rsa4096" || *webroot != "/var/www" || !slices.Equal(rest, []string{"arg"}) {
		t.Errorf("email %q, ca %q, key-type %q, webroot %q, args %q", *email, *ca, *keyType, *webroot, rest)
	}
	for _, want := range []string{
		"certkeeper: -m is certbot's spelling of --email\n",
		"certkeeper: --staging is certbot's spelling of --ca staging\n",
		"certkeeper: --agree-tos (certbot) is not needed: it never prompts\n",
		"certkeeper: --rsa-key-size is certbot's spelling of --key-type\n",
		"certkeeper: -w is certbot's spelling of --webroot\n",
	} {
		if !strings.Contains(notes.String(), want) {
			t.Errorf("notes lack %q:\n%s", want, notes.String())
		}
	}
	if SpellingOf(fs.Lookup("m")) != "certbot" || SpellingOf(fs.Lookup("email")) != "" {
		t.Error("SpellingOf does not tell spellings from flags")
	}
	var help bytes.Buffer
	PrintFlags(&help, fs, nil)
	if strings.Contains(help.String(), "-m") || strings.Contains(help.String(), "staging") || strings.Contains(help.String(), "agree") {
		t.Errorf("--help shows spellings:\n%s", help.String())
	}
	if _, err := Parse(fs, []string{"--agree"}, false, nil); err == nil || strings.Contains(err.Error(), "agree-tos") {
		t.Errorf("a typo is pointed at a spelling: %v", err)
	}
}

// TestSpellingRefused: a spelling with Refuse is a usage error that says
// what to do, before any flag after it is parsed; it takes no value, so
// the word after it is not swallowed.
func TestSpellingRefused(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	webroot := fs.String("webroot", "", "`DIR`")
	AddSpellings(fs, []Spelling{{Tool: "certbot", Name: "nginx", Refuse: "give --webroot DIR"}})
	_, err := Parse(fs, strings.Fields("--nginx --webroot /srv"), false, nil)
	if err == nil || err.Error() != "--nginx (certbot): give --webroot DIR" {
		t.Errorf("Parse(--nginx) = %v", err)
	}
	if *webroot != "" {
		t.Errorf("flags after the refused spelling were set: --webroot %q", *webroot)
	}
	if !IsBool(fs.Lookup("nginx")) {
		t.Error("a refused spelling takes a value")
	}
}
