package dnsprovider

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/solver/dns01"
)

func TestChoose(t *testing.T) {
	fl := CommandFlags()
	extra := []Provider{{Name: "cloud", Help: "a cloud", Settings: []Setting{{Name: "token", Secret: true, Required: true, Help: "an API token"}, {Name: "zone"}},
		New: func(Settings) (dns01.Provider, error) { return nil, nil }}}
	token := writeFile(t, "t0k3n")
	if _, err := fl.Choose("cloud", nil, map[string]string{"zone": "a.test"}, map[string]string{"token": token}, extra); err != nil {
		t.Fatalf("Choose(cloud) = %v", err)
	}
	if p, err := fl.Choose("exec", Settings{"program": "/bin/true"}, nil, nil, extra); err != nil || p == nil {
		t.Fatalf("Choose(exec) = %v, %v", p, err)
	}
	for _, tc := range []struct {
		name          string
		builtin       Settings
		values, files map[string]string
		want          string
		usage         bool
	}{
		{name: "nope", want: `--dns "nope": use rfc2136, powerdns, exec or cloud`, usage: true},
		{name: "rfc2136", values: map[string]string{"x": "1"}, want: "--dns-setting x: --dns rfc2136 takes no --dns-setting; its settings are flags of their own", usage: true},
		// A file is named as the flag it came with.
		{name: "exec", files: map[string]string{"program": "/bin/true"}, want: "--dns-setting-file program: --dns exec takes no --dns-setting-file", usage: true},
		{name: "rfc2136", want: "--dns rfc2136 needs --dns-server", usage: true},
		{name: "cloud", values: map[string]string{"token": "secret"}, want: "give --dns-setting-file token=FILE (dns_setting_file)", usage: true},
		{name: "cloud", values: map[string]string{"other": "1"}, want: "--dns-setting other: --dns cloud takes token, zone", usage: true},
		{name: "cloud", want: "--dns cloud needs --dns-setting-file token=FILE (an API token)", usage: true},
		{name: "cloud", files: map[string]string{"token": "/nonexistent/file"}, want: "--dns-setting-file token: "},
	} {
		_, err := fl.Choose(tc.name, tc.builtin, tc.values, tc.files, extra)
		var uerr *UsageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &uerr) != tc.usage {
			t.Errorf("Choose(%s, %v, %v) = %v, want %q (usage error: %v)", tc.name, tc.values, tc.files, err, tc.want, tc.usage)
		}
		if strings.Contains(fmtErr(err), "secret") && strings.Contains(fmtErr(err), "=secret") {
			t.Errorf("Choose quoted a secret: %v", err)
		}
	}
	var b bytes.Buffer
	fl.WriteHelp(&b, extra)
	if !strings.Contains(b.String(), "token  an API token (required, secret: from a file)") || !strings.Contains(b.String(), "--dns-setting NAME=VALUE") {
		t.Errorf("WriteHelp wrote\n%s", b.String())
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
