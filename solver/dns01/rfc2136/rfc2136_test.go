package rfc2136

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

const secret = "c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IHNlY3I="

func TestParseKey(t *testing.T) {
	for _, tt := range []struct {
		in            string
		name, alg     string
		wantErrSubstr string
	}{
		{in: "certkeeper:hmac-sha256:" + secret, name: "certkeeper", alg: "hmac-sha256"},
		{in: "hmac-sha512:certkeeper.:" + secret, name: "certkeeper.", alg: "hmac-sha512"},
		{in: "certkeeper:hmac-md5:" + secret, wantErrSubstr: "hmac-sha256 or hmac-sha512"},
		{in: "certkeeper:hmac-sha256:not base64!", wantErrSubstr: "not standard base64"},
		{in: "certkeeper", wantErrSubstr: "NAME:ALGORITHM:SECRET"},
	} {
		var p Provider
		err := p.ParseKey(tt.in)
		if tt.wantErrSubstr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErrSubstr) {
				t.Errorf("ParseKey(%q) = %v, want an error with %q", tt.in, err, tt.wantErrSubstr)
			}
			if _, sec, _ := strings.Cut(tt.in[strings.IndexByte(tt.in, ':')+1:], ":"); err != nil && sec != "" && strings.Contains(err.Error(), sec) {
				t.Errorf("ParseKey(%q) error repeats the secret: %v", tt.in, err)
			}
			continue
		}
		if err != nil || p.KeyName != tt.name || p.Algorithm != tt.alg || p.Secret != secret {
			t.Errorf("ParseKey(%q) = %+v, %v", tt.in, p, err)
		}
	}
}

// TestSecretNeverLogged: String and LogValue leave the secret out.
func TestSecretNeverLogged(t *testing.T) {
	p := &Provider{Server: "127.0.0.1:53", KeyName: "k", Secret: secret}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", slog.Any("provider", p))
	for _, s := range []string{buf.String(), p.String()} {
		if strings.Contains(s, secret) {
			t.Errorf("secret in %q", s)
		}
	}
	if !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("log = %q, want REDACTED", buf.String())
	}
}
