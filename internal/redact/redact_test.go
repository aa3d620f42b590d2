package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"redis://10.0.0.5:6379/0", "redis://10.0.0.5:6379/0"},
		{"redis://u:s3cret@10.0.0.5:6379/0?prefix=p", "redis://REDACTED@10.0.0.5:6379/0"},
		{"redis://:s3cret@h", "redis://REDACTED@h"},
		{"redis+sentinel://s1:26379,s2:26379/m?sentinel_password=s3cret", "redis+sentinel://s1:26379,s2:26379/m"},
		{"https://ask.example/allowed?token=s3cret#frag", "https://ask.example/allowed"},
		{"http://user@h/", "http://REDACTED@h/"},
		{"redis:/u:s3cret@h", "redis://REDACTED@h"},
		{"/var/lib/certkeeper", "/var/lib/certkeeper"},
		{`C:\certkeeper`, `C:\certkeeper`},
		{"dir@2/x", "dir@2/x"},
		{"", ""},
		{"local", "local"},
		{"https://acme-v02.api.letsencrypt.org/directory", "https://acme-v02.api.letsencrypt.org/directory"},
		{"redis://user:Sup3r/Secr3t@h:1/0", "redis://REDACTED@h:1/0"},
		{"redis://user:Sup3r?Secr3t@h:1/0", "redis://REDACTED"},
		{"https://h/allowed?email=a@b.example", "https://REDACTED"},
		{"redis://u:p@h/0?sentinel_password=p@ss", "redis://REDACTED"},
	} {
		if got := URL(tt.raw); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

// TestURLPasswordCharacters: a password holding any character, typed as
// it is or percent-encoded, leaves nothing of itself in the result.
func TestURLPasswordCharacters(t *testing.T) {
	for _, c := range strings.Split("/?#@:%[]! ", "") {
		for _, raw := range []string{
			"redis://user:Sup3r" + c + "Secr3t@127.0.0.1:6379/0",
			"redis://Sup3r" + c + "Secr3t@127.0.0.1:6379/0",
			"redis+sentinel://user:Sup3r" + c + "Secr3t@s1,s2/m?sentinel_password=Sup3r" + c + "Secr3t",
			"https://user:Sup3r" + c + "Secr3t@ask.example/allowed?token=Sup3r",
			"http://user:Sup3r" + c + "Secr3t@[::1]:8080",
		} {
			got := URL(raw)
			if strings.Contains(got, "Sup3r") || strings.Contains(got, "Secr3t") || strings.Contains(got, "%Se") {
				t.Errorf("URL(%q) = %q, which shows the password", raw, got)
			}
			if !strings.Contains(got, "REDACTED") {
				t.Errorf("URL(%q) = %q, want it to say the user information was left out", raw, got)
			}
		}
	}
}

func TestError(t *testing.T) {
	for _, c := range strings.Split("/?#@:%", "") {
		raw := "http://user:Sup3r" + c + "Secr3t@h:1/x"
		if _, err := url.Parse(raw); err != nil {
			if got := Error(raw, err).Error(); strings.Contains(got, "Sup3r") || strings.Contains(got, "%Se") {
				t.Errorf("Error(%q) = %q, which shows the password", raw, got)
			}
		}
	}
	raw := "http://[::1/x"
	_, err := url.Parse(raw) //lint:ignore SA1007 the parser's error is what this test needs
	if got := Error(raw, err); got == nil || strings.Contains(got.Error(), raw) || !strings.Contains(got.Error(), "]") {
		t.Errorf("Error(%q) = %v, want the parser's reason without the URL", raw, got)
	}
}

func FuzzURL(f *testing.F) {
	f.Add("redis://user:Sup3r/Secr3t@h:1/0?x=y", "Sup3r/Secr3t")
	f.Add("https://u:p@h/", "p")
	f.Fuzz(func(t *testing.T, prefix, password string) {
		if strings.Contains(password, "@") || len(password) < 4 {
			return
		}
		raw := "https://" + prefix + ":" + password + "@h/"
		if strings.Contains(URL(raw), password) && !strings.Contains("https://REDACTED@h/", password) {
			t.Fatalf("URL(%q) = %q shows the password %q", raw, URL(raw), password)
		}
	})
}
