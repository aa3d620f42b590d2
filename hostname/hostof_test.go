package hostname

import "testing"

func TestHostOf(t *testing.T) {
	for _, tt := range []struct{ s, want string }{
		{"https://a.example", "a.example"},
		{"https://a.example:8443/path?q", "a.example"},
		{"http://*.a.example/", "*.a.example"},
		{"a.example:443", "a.example"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"a.example", ""},
		{"2001:db8::1", ""},
		{"a..example:443", ""},
		{"https://", ""},
		{"a.example:", ""},
	} {
		if got := HostOf(tt.s); got != tt.want {
			t.Errorf("HostOf(%q) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestWithHostHint(t *testing.T) {
	_, err := Normalize("https://a.example/")
	if got, want := WithHostHint("https://a.example/", err).Error(), `invalid name "https://a.example/": give the host name alone: a.example`; got != want {
		t.Errorf("WithHostHint = %q, want %q", got, want)
	}
	_, err = Normalize("a..example")
	if got := WithHostHint("a..example", err); got != err {
		t.Errorf("WithHostHint(a..example) = %v, want Normalize's error %v", got, err)
	}
	if got := WithHostHint("a.example:443", nil); got != nil {
		t.Errorf("WithHostHint(nil) = %v, want nil", got)
	}
}
