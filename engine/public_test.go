package engine

import (
	"reflect"
	"testing"
)

func TestNotPublic(t *testing.T) {
	patterns := []string{"localhost", "www.example.com", "*.printers.local", "*.corp.internal", "10.0.0.1", "192.0.2.1",
		"intranet", "re:.*\\.local", "a..b"}
	for _, tt := range []struct {
		name  string
		cas   []string
		rules []Rule
		want  []string
	}{
		{"default CA", nil, nil, []string{"localhost", "*.printers.local", "*.corp.internal", "10.0.0.1", "intranet"}},
		{"staging", []string{"staging"}, nil, []string{"localhost", "*.printers.local", "*.corp.internal", "10.0.0.1", "intranet"}},
		{"production URL", []string{"https://acme-v02.api.letsencrypt.org/directory"}, nil,
			[]string{"localhost", "*.printers.local", "*.corp.internal", "10.0.0.1", "intranet"}},
		{"local", []string{"local"}, nil, nil},
		{"fallback to another CA", []string{"letsencrypt", "https://ca.corp.internal/acme/directory"}, nil, nil},
		{"rules", []string{"letsencrypt"}, []Rule{{Pattern: "*.internal", CAs: []string{"local"}}, {Pattern: "localhost", Profile: "x"}},
			[]string{"localhost", "*.printers.local", "10.0.0.1", "intranet"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range NotPublic(tt.cas, tt.rules, patterns) {
				if p.Reason == "" {
					t.Errorf("NotPublic: %s without a reason", p.Pattern)
				}
				got = append(got, p.Pattern)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("NotPublic(%q) = %q, want %q", tt.cas, got, tt.want)
			}
		})
	}
}
