package main

import (
	"os"
	"strconv"
	"strings"
)

// The environment variables of letsdebug/acme-alpn-proxy that alpn-proxy
// start honours as defaults for its flags, so scripts written for it keep
// working.
const (
	rulespecEnv  = "ACME_ALPN_PROXY_RULESPEC"
	disableV6Env = "ACME_ALPN_PROXY_DISABLEV6"
)

// iptablesTag is the comment on every rule alpn-proxy adds: rules are found
// by it, also those of a proxy that was killed before it could remove them.
const iptablesTag = "certkeeper-alpn-proxy"

// defaultRulespec is the rule that sends incoming TCP port 443 to port, as
// the original's default (with our tag).
func defaultRulespec(port int) string {
	return "-p tcp --dport 443 -j REDIRECT --to-ports " + strconv.Itoa(port) + " -m comment --comment " + iptablesTag
}

// envDisablesV6 reports whether $ACME_ALPN_PROXY_DISABLEV6 asks for no
// ip6tables rules (the original checks for "y"; yes, 1 and true also do).
func envDisablesV6() bool {
	switch strings.ToLower(os.Getenv(disableV6Env)) {
	case "y", "yes", "1", "true":
		return true
	}
	return false
}

// redirectRules are the nat REDIRECT rules alpn-proxy start --iptables adds
// with iptables and, unless disabled, ip6tables, in PREROUTING and
// optionally OUTPUT. Every rule carries the comment iptablesTag.
type redirectRules struct {
	// spec is the rule specification without table, command and chain;
	// the tag comment is appended when it lacks it.
	spec []string
	// outputUID, when non-negative, adds spec to the OUTPUT chain too, for
	// clients on this host, excluding the sockets of that user: the proxy's
	// own connection to --fallback must not be redirected back to the proxy.
	outputUID int
	ipv6      bool
}
