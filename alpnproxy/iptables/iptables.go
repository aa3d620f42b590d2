// Package iptables adds and removes the Linux netfilter rules that send
// incoming TCP port 443 to an alpnproxy.Server, so that it sees the
// connections of a port a web server owns without either being
// reconfigured.
//
// It exists apart from package alpnproxy because the proxy itself is
// portable and needs no privileges, while the rules are Linux-only, need
// root (CAP_NET_ADMIN), and are run through the iptables and ip6tables
// commands, which it looks for in PATH and in /usr/sbin and /sbin. On
// other systems Install and Check fail and Remove does nothing.
//
// Every rule a Redirect adds carries the comment Tag, and Remove deletes
// every rule with that comment, whoever added it: the rules a killed proxy
// left behind are found and removed by the next one. The package does not
// keep the rules in place against other programs that change the nat
// table (a firewall daemon, Docker), and does not touch the filter table.
package iptables

import (
	"strconv"
	"strings"
)

// Tag is the comment on every rule a Redirect adds: rules are found by it,
// also those of a proxy that was killed before it could remove them.
const Tag = "certkeeper-alpn-proxy"

// DefaultSpec is the rule specification that sends incoming TCP port 443
// to port, as letsdebug/acme-alpn-proxy's default (with Tag), for
// connections to this host's own addresses only (-m addrtype --dst-type
// LOCAL): on a host that routes (Docker's, Kubernetes', a VPN gateway)
// PREROUTING also sees its containers' and clients' connections to other
// hosts' port 443, which the seed's rule sent to the local web server
// while the proxy ran (an alpn-proxy trial).
func DefaultSpec(port int) []string {
	return strings.Fields("-p tcp --dport 443 -m addrtype --dst-type LOCAL -j REDIRECT --to-ports " + strconv.Itoa(port) + " -m comment --comment " + Tag)
}

// Redirect is a set of nat REDIRECT rules, added with iptables and, with
// IPv6, ip6tables, in the PREROUTING chain and optionally OUTPUT. Every
// rule carries the comment Tag.
type Redirect struct {
	// Spec is the rule specification without table, command and chain
	// ("-p tcp --dport 443 -j REDIRECT --to-ports 21443", as fields); Tag
	// is appended when it lacks it. It must not be empty: see DefaultSpec.
	Spec []string

	// Output adds Spec to the OUTPUT chain too, for clients on this host,
	// excluding the sockets of user ExceptUID: the proxy's own connection
	// to its fallback must not be redirected back to the proxy, so
	// ExceptUID is the proxy's user (os.Geteuid()).
	Output    bool
	ExceptUID int

	// IPv6 adds the rules with ip6tables as well as iptables. Without it
	// ip6tables is only asked, if present, to remove leftover rules.
	IPv6 bool
}

// RedirectPort returns the port a REDIRECT spec sends connections to (its
// --to-ports or --to-port value, the first of a range), or "" when spec
// names none.
func RedirectPort(spec []string) string {
	for i, f := range spec {
		if (f == "--to-ports" || f == "--to-port") && i+1 < len(spec) {
			port, _, _ := strings.Cut(spec[i+1], "-")
			return port
		}
	}
	return ""
}
