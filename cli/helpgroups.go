package cli

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// flagGroup is one topic of a command's --help: a heading and the flags
// under it. A flag name means one thing in every command, so it belongs
// to exactly one group everywhere; TestHelpGroups fails for a flag of any
// command that no group lists, or that two list.
type flagGroup struct {
	title string
	flags []string
}

// flagGroups are the topics of --help, in the order printed.
var flagGroups = []flagGroup{
	{"Configuration", []string{"config", "check-config"}},
	{"Names and policy", []string{"d", "allow", "ask", "require-own-ip", "own-ip-private", "wildcard", "managed",
		"default-name", "csr", "no-apex", "cert-file", "cert-file-check-every"}},
	{"CA and account", []string{"ca", "ca-roots", "email", "eab-kid", "eab-hmac", "key-type", "profile", "preferred-chain",
		"order-limit", "no-wait", "rsa-fallback", "self-signed-fallback", "agree-tos", "contact", "issuer-domain",
		"policy-wildcard", "until"}},
	{"Challenges", []string{"challenge", "dns", "dns-server", "tsig-key", "tsig-key-file", "dns-exec",
		"dns-exec-mode", "dns-api-url", "dns-api-key-file", "dns-resolver", "dns-zone", "dns-setting", "dns-setting-file", "dns-check-port", "dns-timeout",
		"dns-no-check"}},
	{"Listeners", []string{"tls-addr", "http-addr", "tls-alpn-addr", "listen", "addr", "api-cert", "client-ca", "token-file",
		"issue-timeout", "proxy-protocol", "max-conns", "idle-timeout", "drain", "no-ipv6", "alpn", "pidfile"}},
	{"Backends", []string{"backend", "route", "fallback"}},
	{"Firewall", []string{"iptables", "iptables-output", "rulespec"}},
	{"Storage", []string{"storage", "storage-key-file", "storage-password-file", "to-key-file", "to-password-file",
		"from-key-file", "from-password-file"}},
	{"Renewal", []string{"grace", "force", "new-key", "want"}},
	{"Input and output", []string{"out-dir", "out", "cert-out", "key-out", "valid-for", "format", "json", "from", "to", "cert", "key"}},
	{"Hooks and deploy", []string{"pre-hook", "deploy-hook", "post-hook", "check-hook", "deploy-format", "deploy-out-dir",
		"deploy-check-hook", "deploy-post-hook"}},
	{"Operations (metrics, status, alerts, audit)", []string{"metrics-addr", "metrics-token", "status-addr", "status-token",
		"alert-check-every", "alert-exec", "alert-expiring-within", "alert-failing-for", "alert-webhook", "audit-log",
		"audit-fail-open"}},
	{"Run", []string{"timeout", "dry-run", "overwrite", "yes", "reason", "name", "no-nss", "no-system"}},
	{"Logging", []string{"log-format", "log-level"}},
}

// flagGroupOf is the title of the group that lists the flag name, or "".
func flagGroupOf(name string) string {
	for _, g := range flagGroups {
		for _, n := range g.flags {
			if n == name {
				return g.title
			}
		}
	}
	return ""
}

// printFlags writes fs's flags by group, each group's flags sorted;
// deprecated aliases are left out. A flag no group lists (a bug that
// TestHelpGroups catches) comes last under "Other".
func printFlags(w io.Writer, fs *flag.FlagSet) {
	byGroup := map[string][]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		if aliasOf(f) != nil {
			return
		}
		g := flagGroupOf(f.Name)
		if g == "" {
			g = "Other"
		}
		byGroup[g] = append(byGroup[g], f)
	})
	titles := make([]string, 0, len(flagGroups)+1)
	for _, g := range flagGroups {
		titles = append(titles, g.title)
	}
	for _, title := range append(titles, "Other") {
		flags := byGroup[title]
		if len(flags) == 0 {
			continue
		}
		sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, f := range flags {
			printFlag(w, f)
		}
	}
}

// printFlag writes one flag's entry: its name and kind, then its usage.
func printFlag(w io.Writer, f *flag.Flag) {
	kind, usage := flag.UnquoteUsage(f)
	line := "  " + flagName(f.Name)
	if kind != "" {
		line += " " + kind
	}
	fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
		fmt.Fprintf(w, " (default %s)", f.DefValue)
	}
	fmt.Fprintln(w)
}
