package cli

import (
	"github.com/certkeeper/certkeeper/internal/cmdline"
)

// flagGroups are the topics of --help, in the order printed, each a
// heading and the flags under it. A flag name means one thing in every
// command, so it belongs to exactly one group everywhere; TestHelpGroups
// fails for a flag of any command that no group lists, or that two list.
var flagGroups = []cmdline.HelpGroup{
	{Title: "Configuration", Flags: []string{"config", "check-config"}},
	{Title: "Names and policy", Flags: []string{"d", "allow", "ask", "require-own-ip", "own-ip-private", "wildcard", "managed",
		"default-name", "csr", "no-apex", "cert-file", "cert-file-check-every"}},
	{Title: "CA and account", Flags: []string{"ca", "ca-roots", "chain-roots", "email", "eab-kid", "eab-hmac", "key-type", "profile", "preferred-chain",
		"order-limit", "client-limit", "no-wait", "rsa-fallback", "self-signed-fallback", "agree-tos", "contact", "issuer-domain",
		"policy-wildcard", "until"}},
	{Title: "Challenges", Flags: []string{"challenge", "webroot", "dns", "dns-server", "tsig-key", "tsig-key-file", "dns-exec",
		"dns-exec-mode", "dns-api-url", "dns-api-key-file", "dns-resolver", "dns-zone", "dns-setting", "dns-setting-file", "dns-check-port", "dns-timeout",
		"dns-no-check"}},
	{Title: "Listeners", Flags: []string{"tls-addr", "http-addr", "tls-alpn-addr", "listen", "addr", "api-cert", "client-ca", "token-file", "no-auth",
		"issue-timeout", "max-ttl", "proxy-protocol", "proxy-protocol-from", "max-conns", "max-conns-per-client", "cache-size", "idle-timeout", "drain", "no-ipv6", "alpn", "pidfile"}},
	{Title: "Backends", Flags: []string{"backend", "route", "backend-ca", "backend-timeout", "fallback"}},
	{Title: "Firewall", Flags: []string{"iptables", "iptables-output", "rulespec"}},
	{Title: "Storage", Flags: []string{"storage", "storage-key-file", "storage-password-file", "to-key-file", "to-password-file",
		"from-key-file", "from-password-file"}},
	{Title: "Renewal", Flags: []string{"grace", "force", "new-key", "want"}},
	{Title: "Input and output", Flags: []string{"out-dir", "out", "cert-out", "key-out", "valid-for", "format", "json", "nagios", "from", "to", "cert", "key", "root-file", "words"}},
	{Title: "Hooks and deploy", Flags: []string{"pre-hook", "deploy-hook", "post-hook", "check-hook", "group", "deploy-format", "deploy-out-dir",
		"deploy-check-hook", "deploy-post-hook", "deploy-group"}},
	{Title: "Operations (metrics, status, alerts, audit)", Flags: []string{"metrics-addr", "metrics-token", "status-addr", "status-token",
		"alert-check-every", "alert-exec", "alert-expiring-within", "alert-failing-for", "alert-webhook", "audit-log",
		"audit-fail-open"}},
	{Title: "Run", Flags: []string{"timeout", "wait", "dry-run", "quiet", "overwrite", "yes", "reason", "name", "no-nss", "no-system"}},
	{Title: "Logging", Flags: []string{"log-format", "log-level", "access-log"}},
}
