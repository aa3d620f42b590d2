package cli

import (
	"strings"

	"github.com/certkeeper/certkeeper/internal/cmdline"
)

// otherTools are certbot's and lego's spellings of the flags of the ACME
// commands (cert issue, renew, revoke, delete, account register, deactivate), taken
// with a note that names certkeeper's flag (cmdline.Spelling). Each is
// registered only where its flag exists; docs/cli.md lists them.
var otherTools = []cmdline.Spelling{
	{Tool: "certbot and lego", Name: "m", To: "email"},
	{Tool: "certbot and lego", Name: "server", To: "ca"},
	{Tool: "certbot and lego", Name: "domains", To: "d"},
	{Tool: "certbot", Name: "domain", To: "d"},
	{Tool: "certbot", Name: "staging", To: "ca", Fixed: "staging"},
	{Tool: "certbot", Name: "test-cert", To: "ca", Fixed: "staging"},
	{Tool: "certbot", Name: "standalone", To: "challenge", Fixed: "http-01"},
	{Tool: "lego", Name: "http", To: "challenge", Fixed: "http-01"},
	{Tool: "lego", Name: "tls", To: "challenge", Fixed: "tls-alpn-01"},
	{Tool: "certbot", Name: "preferred-challenges", To: "challenge", Convert: challengeType},
	{Tool: "certbot", Name: "w", To: "webroot"},
	{Tool: "certbot", Name: "webroot-path", To: "webroot"},
	{Tool: "lego", Name: "http.webroot", To: "webroot"},
	{Tool: "lego", Name: "http.port", To: "http-addr"},
	{Tool: "certbot", Name: "http-01-port", To: "http-addr", Convert: func(v string) string { return ":" + v }},
	{Tool: "lego", Name: "tls.port", To: "tls-alpn-addr"},
	{Tool: "certbot", Name: "rsa-key-size", To: "key-type", Convert: func(v string) string { return "rsa" + v }},
	{Tool: "certbot", Name: "elliptic-curve", To: "key-type"}, // secp256r1, secp384r1: issuer.ParseKeyType
	{Tool: "certbot", Name: "eab-hmac-key", To: "eab-hmac"},
	{Tool: "lego", Name: "kid", To: "eab-kid"},
	{Tool: "lego", Name: "hmac", To: "eab-hmac"},
	{Tool: "certbot", Name: "force-renewal", To: "force"},
	{Tool: "lego", Name: "days", To: "grace", Convert: daysToDuration},
	{Tool: "certbot", Name: "q", To: "quiet"},
	{Tool: "certbot", Name: "renew-hook", To: "deploy-hook"},
	{Tool: "certbot", Name: "no-random-sleep-on-renew", Why: "certkeeper does not sleep before renewing; cron's schedule decides when"},
	{Tool: "certbot", Name: "cert-path", To: "cert"},
	{Tool: "certbot", Name: "key-path", To: "key"},
	// account register has --agree-tos: there lego's name means it (a
	// spelling whose flag is missing is skipped, and the next one taken).
	{Tool: "lego", Name: "accept-tos", To: "agree-tos"},
	{Tool: "certbot", Name: "agree-tos", Why: "certkeeper never prompts; registering an account prints the terms it agrees to"},
	{Tool: "lego", Name: "accept-tos", Why: "certkeeper never prompts; registering an account prints the terms it agrees to"},
	{Tool: "certbot", Name: "non-interactive", To: "yes", Fixed: "true"}, // cert delete, account deactivate
	{Tool: "certbot", Name: "n", To: "yes", Fixed: "true"},
	{Tool: "certbot", Name: "non-interactive", Why: "certkeeper never prompts"},
	{Tool: "certbot", Name: "n", Why: "certkeeper never prompts"},
	{Tool: "certbot", Name: "register-unsafely-without-email", Why: "without --email the account has no contact"},
	{Tool: "certbot", Name: "reuse-key", Why: "cert renew keeps each certificate's key unless --new-key"},
	{Tool: "certbot", Name: "expand", Why: "cert issue replaces the certificate with one for the names given, and says what changed"},
	{Tool: "certbot", Name: "nginx", Refuse: serverPlugin("nginx", "nginx")},
	{Tool: "certbot", Name: "apache", Refuse: serverPlugin("apache", "apache2")},
}

// serverPlugin is what to do instead of certbot's --nginx or --apache.
func serverPlugin(server, unit string) string {
	return "certkeeper does not edit " + server + "'s configuration, as certbot's " + server + " plugin does: give --webroot DIR, " +
		"the document root " + server + " serves the names from on port 80, and --deploy-hook 'systemctl reload " + unit +
		"', then point " + server + " at the files written (--out-dir)"
}

// renewSpellings are otherTools and certbot's renew --cert-name, which
// cert renew's -d is; elsewhere --cert-name names certbot's files, not a
// certificate to act on.
var renewSpellings = append(otherTools[:len(otherTools):len(otherTools)], cmdline.Spelling{Tool: "certbot", Name: "cert-name", To: "d"})

// challengeType is certbot's --preferred-challenges value as a challenge
// type: http is http-01, dns dns-01, tls-alpn tls-alpn-01.
func challengeType(v string) string {
	if v == "http" || v == "dns" || v == "tls-alpn" {
		return v + "-01"
	}
	return strings.TrimSpace(v)
}
