//go:build linux

package iptables

import (
	"fmt"
	"testing"
)

// The rules themselves are tested end to end, in a network namespace of
// their own, by cli's TestALPNProxyIPTables (it needs root).

func TestIPTablesSplitRule(t *testing.T) {
	tests := []struct {
		name, line string
		want       []string
		tagged     bool
	}{
		{name: "ours", line: "-A PREROUTING -p tcp -m tcp --dport 443 -m comment --comment certkeeper-alpn-proxy -j REDIRECT --to-ports 21443",
			want:   []string{"-A", "PREROUTING", "-p", "tcp", "-m", "tcp", "--dport", "443", "-m", "comment", "--comment", "certkeeper-alpn-proxy", "-j", "REDIRECT", "--to-ports", "21443"},
			tagged: true},
		{name: "quoted comment", line: `-A OUTPUT -m comment --comment "a \"b\" c" -j ACCEPT`,
			want: []string{"-A", "OUTPUT", "-m", "comment", "--comment", `a "b" c`, "-j", "ACCEPT"}},
		{name: "tag in another comment", line: `-A OUTPUT -m comment --comment "not certkeeper-alpn-proxy" -j ACCEPT`,
			want: []string{"-A", "OUTPUT", "-m", "comment", "--comment", "not certkeeper-alpn-proxy", "-j", "ACCEPT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := splitRule(tt.line); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("splitRule(%q) = %q, want %q", tt.line, got, tt.want)
			}
			if got := len(taggedRules([]byte("-P OUTPUT ACCEPT\n"+tt.line+"\n"))) == 1; got != tt.tagged {
				t.Errorf("taggedRules(%q) found it: %v, want %v", tt.line, got, tt.tagged)
			}
		})
	}
}
