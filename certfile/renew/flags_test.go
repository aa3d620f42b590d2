package renew

import (
	"errors"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestFromFlagsApplyFlags(t *testing.T) {
	newFlags := func() (*flag.FlagSet, *string) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		ca := fs.String("ca", "letsencrypt", "")
		fs.String("challenge", "http-01", "")
		fs.String("tls-alpn-addr", ":443", "")
		fs.String("tsig-key-file", "", "")
		fs.String("dns-zone", "", "")
		fs.String("post-hook", "", "")
		fs.String("grace", "", "") // not a setting
		return fs, ca
	}
	fs, _ := newFlags()
	if err := fs.Parse([]string{"--tls-alpn-addr", "127.0.0.1:443", "--tsig-key-file", "k.key", "--dns-zone", "x", "--grace", "7d", "--post-hook", "true"}); err != nil {
		t.Fatal(err)
	}
	zones := func(fl *flag.Flag) []string {
		if fl.Name == "dns-zone" {
			return []string{"a.test", "b.test"}
		}
		return nil
	}
	s, err := FromFlags(fs, zones, "ca")
	if err != nil {
		t.Fatal(err)
	}
	if s.CA != "letsencrypt" || s.Challenge != "" || s.TLSAddr != "127.0.0.1:443" || !filepath.IsAbs(s.TSIGKeyFile) ||
		strings.Join(s.DNSZones, " ") != "a.test b.test" || s.PostHook != "true" {
		t.Errorf("FromFlags = %+v", s)
	}
	g, ca := newFlags()
	s.CA = "staging"
	if err := s.ApplyFlags(g, HookKeys()...); err != nil {
		t.Fatal(err)
	}
	if *ca != "staging" || g.Lookup("tls-alpn-addr").Value.String() != "127.0.0.1:443" || g.Lookup("post-hook").Value.String() != "" {
		t.Errorf("ApplyFlags set ca %s, tls-alpn-addr %s, post-hook %q", *ca, g.Lookup("tls-alpn-addr").Value, g.Lookup("post-hook").Value)
	}
	bad := flag.NewFlagSet("t", flag.ContinueOnError)
	bad.SetOutput(io.Discard)
	if err := (Settings{HTTPAddr: ":80"}).ApplyFlags(bad); err == nil || !strings.Contains(err.Error(), "http_addr = :80: ") {
		t.Errorf("ApplyFlags without the flag = %v", err)
	}
	nl := flag.NewFlagSet("t", flag.ContinueOnError)
	nl.String("email", "", "")
	_ = nl.Parse([]string{"--email", "a\nb"})
	var ferr *FlagError
	if _, err := FromFlags(nl, nil); !errors.As(err, &ferr) || ferr.Flag != "email" {
		t.Errorf("FromFlags(email with a newline) = %v, want a *FlagError", err)
	}
}

// TestApplyUnset: remembered settings fill in the flags of the keys named
// that the command line left out; a flag given, a key not named and a
// setting not held leave their flags alone.
func TestApplyUnset(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ca := fs.String("ca", "letsencrypt", "")
	roots := fs.String("ca-roots", "", "")
	email := fs.String("email", "", "")
	challenge := fs.String("challenge", "http-01", "")
	profile := fs.String("profile", "", "")
	if err := fs.Parse([]string{"--email", "given@a.test"}); err != nil {
		t.Fatal(err)
	}
	s := Settings{CA: "https://ca.test/dir", CARoots: "/roots.pem", Email: "kept@a.test", Challenge: "dns-01"}
	if err := s.ApplyUnset(fs, "ca", "ca_roots", "email", "profile"); err != nil {
		t.Fatal(err)
	}
	if *ca != s.CA || *roots != s.CARoots || *email != "given@a.test" || *challenge != "http-01" || *profile != "" {
		t.Errorf("after ApplyUnset: ca %q, ca-roots %q, email %q, challenge %q, profile %q", *ca, *roots, *email, *challenge, *profile)
	}
}
