package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateKey(t *testing.T) {
	for _, tt := range []struct {
		key string
		ok  bool
	}{
		{"certificates/" + le + "/a.test.json", true},
		{"a", true},
		{"a/b/c", true},
		{"a b/c", true},
		{"ü/ä", true},
		{"issue/*.a.test", true},
		{"a.b", true},
		{"a-/_b", true},
		{strings.Repeat("a", 1024), true},
		{strings.Repeat("a", 1025), false},
		{"", false},
		{".", false},
		{"..", false},
		{"a/../b", false},
		{"a..b", false},
		{"/abs", false},
		{"/", false},
		{`a\b`, false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a\x7fb", false},
		{"C:/x", false},
		{"a:b", false},
		{"a//b", false},
		{"a/", false},
		{".hidden", false},
		{"a/.tmp-1", false},
		{"a.", false},
		{"a/b./c", false},
		{"a ", false},
		{"a\xffb", false},
	} {
		err := ValidateKey(tt.key)
		if tt.ok && err != nil {
			t.Errorf("ValidateKey(%.40q) = %v, want nil", tt.key, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidateKey(%.40q) = %v, want ErrInvalidKey", tt.key, err)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, tt := range []struct {
		prefix string
		ok     bool
	}{
		{"", true},
		{"certificates/", true},
		{"certificates", true},
		{"certificates/x/a.", true}, // "certificates/x/a.test.json" starts with it
		{"a ", true},
		{"a/b/", true},
		{strings.Repeat("a", 1024), true},
		{strings.Repeat("a", 1025), false},
		{"/", false},
		{"//", false},
		{"a//", false},
		{"a/./", false},
		{"a/.", false},
		{"a/..", false},
		{"..", false},
		{"a\\", false},
		{"C:", false},
		{"a\x00", false},
	} {
		err := ValidatePrefix(tt.prefix)
		if tt.ok && err != nil {
			t.Errorf("ValidatePrefix(%.40q) = %v, want nil", tt.prefix, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%.40q) = %v, want ErrInvalidKey", tt.prefix, err)
		}
	}
}
