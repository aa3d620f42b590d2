package dnsprovider

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/solver/dns01"
	dnsexec "github.com/certkeeper/certkeeper/solver/dns01/exec"
	"github.com/certkeeper/certkeeper/solver/dns01/powerdns"
	"github.com/certkeeper/certkeeper/solver/dns01/rfc2136"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBuild(t *testing.T) {
	var got Settings
	p := Provider{Name: "test", Settings: []Setting{{Name: "zone", Required: true, Help: "the zone"}, {Name: "ttl"},
		{Name: "token", Secret: true, Required: true}},
		New: func(s Settings) (dns01.Provider, error) { got = s; return nil, nil }}
	token := writeFile(t, " s3cret\n")
	if _, err := p.Build(map[string]string{"zone": "a.test"}, map[string]string{"token": token}); err != nil {
		t.Fatalf("Build = %v", err)
	}
	if got["zone"] != "a.test" || got["token"] != "s3cret" || len(got) != 2 {
		t.Errorf("New got %v, want zone and the trimmed token", got)
	}
	for _, tc := range []struct {
		name          string
		values, files map[string]string
		setting       string
		problem       Problem
	}{
		{"unknown", map[string]string{"zone": "a", "tokn": "x"}, map[string]string{"token": token}, "tokn", Unknown},
		{"unknown file", map[string]string{"zone": "a"}, map[string]string{"tokn": token}, "tokn", Unknown},
		{"secret as a value", map[string]string{"zone": "a", "token": "s3cret"}, nil, "token", SecretValue},
		{"given twice", map[string]string{"zone": "a"}, map[string]string{"zone": token, "token": token}, "zone", GivenTwice},
		{"missing", map[string]string{"zone": "a"}, nil, "token", Missing},
		{"unreadable", map[string]string{"zone": "a"}, map[string]string{"token": token + ".absent"}, "token", BadFile},
	} {
		_, err := p.Build(tc.values, tc.files)
		var e *SettingError
		if !errors.As(err, &e) || e.Setting != tc.setting || e.Problem != tc.problem || e.Provider != "test" {
			t.Errorf("%s: Build = %#v, want a SettingError %d on %s", tc.name, err, tc.problem, tc.setting)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error %q quotes a secret", tc.name, err)
		}
	}
}

func TestBuiltin(t *testing.T) {
	key := writeFile(t, "key \"ck\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n")
	apiKey := writeFile(t, "pdns-key\n")
	byName := map[string]Provider{}
	for _, p := range Builtin() {
		if err := p.Validate(); err != nil {
			t.Errorf("Builtin %s: %v", p.Name, err)
		}
		byName[p.Name] = p
	}
	for _, tc := range []struct {
		provider string
		s        Settings
		check    func(dns01.Provider) bool
	}{
		{"rfc2136", Settings{"server": "127.0.0.1:53", "tsig_key_file": key}, func(p dns01.Provider) bool {
			r, ok := p.(*rfc2136.Provider)
			return ok && r.KeyName == "ck" && r.Secret == "c2VjcmV0"
		}},
		{"rfc2136", Settings{"server": "127.0.0.1:53", "tsig_key": "ck:hmac-sha512:c2VjcmV0"}, func(p dns01.Provider) bool {
			r, ok := p.(*rfc2136.Provider)
			return ok && r.Algorithm == "hmac-sha512"
		}},
		{"powerdns", Settings{"api_url": "http://127.0.0.1:8081", "api_key_file": apiKey}, func(p dns01.Provider) bool {
			r, ok := p.(*powerdns.Provider)
			return ok && r.APIKey == "pdns-key"
		}},
		{"exec", Settings{"program": "/bin/true", "mode": "RAW"}, func(p dns01.Provider) bool {
			r, ok := p.(*dnsexec.Provider)
			return ok && r.Mode == dnsexec.ModeRaw
		}},
	} {
		got, err := byName[tc.provider].New(tc.s)
		if err != nil || !tc.check(got) {
			t.Errorf("%s.New(%v) = %#v, %v", tc.provider, tc.s, got, err)
		}
	}
	for _, tc := range []struct {
		provider       string
		s              Settings
		setting, other string
		problem        Problem
	}{
		{"rfc2136", Settings{"tsig_key": "ck:hmac-sha256:c2VjcmV0"}, "server", "", Missing},
		{"rfc2136", Settings{"server": "h:53"}, "tsig_key", "tsig_key_file", Missing},
		{"rfc2136", Settings{"server": "h:53", "tsig_key": "x:y:z", "tsig_key_file": key}, "tsig_key", "tsig_key_file", GivenTwice},
		{"rfc2136", Settings{"server": "h:53", "tsig_key_file": apiKey}, "tsig_key_file", "", BadFile},
		{"powerdns", Settings{"api_url": "http://h"}, "api_key_file", "", Missing},
		{"powerdns", Settings{"api_url": "ftp://h", "api_key_file": apiKey}, "api_url", "", Invalid},
		{"powerdns", Settings{"api_url": "http://h", "api_key_file": writeFile(t, "a\nb\n")}, "api_key_file", "", BadFile},
		{"exec", Settings{"mode": "raw"}, "program", "", Missing},
		{"exec", Settings{"program": "/bin/true", "mode": "lego"}, "mode", "", Invalid},
		// A program that is not there, or not executable, is refused
		// when the provider is built, not at the CA's first record.
		{"exec", Settings{"program": filepath.Join(t.TempDir(), "missing.sh")}, "program", "", Invalid},
		{"exec", Settings{"program": apiKey}, "program", "", Invalid},
	} {
		_, err := byName[tc.provider].New(tc.s)
		var e *SettingError
		if !errors.As(err, &e) || e.Setting != tc.setting || e.Other != tc.other || e.Problem != tc.problem {
			t.Errorf("%s.New(%v) = %v, want a SettingError %d on %s (other %q)", tc.provider, tc.s, err, tc.problem, tc.setting, tc.other)
		}
		if err != nil && (strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), "pdns-key")) {
			t.Errorf("%s: the error %q quotes a secret", tc.provider, err)
		}
	}
}
