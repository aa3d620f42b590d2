package engine_test

import (
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/engine"
)

// TestSummaryLines: the summary names every check, redacts URLs, shows
// per-pattern chains and lists the listeners in order.
func TestSummaryLines(t *testing.T) {
	s := engine.Summary{Command: "proxy", Allow: []string{"a.example"}, Ask: "http://u:secret@127.0.0.1:9/ask",
		CertFiles: 2, CAs: []string{"staging", "local"}, Rules: []engine.SummaryRule{{Pattern: "*.b.example", CAs: []string{"local"}}},
		Storage: "/var/lib/certkeeper", LogLevel: "debug", OrderLimit: "10/1m",
		Listeners: []engine.SummaryListener{{What: "HTTPS", Addr: ":443", Flag: "--tls-addr"}}, ProxyProtocolFrom: []string{"10.0.0.0/8", "192.0.2.1"}}
	got := strings.Join(s.Lines(), "\n")
	for _, want := range []string{
		"proxy starting in production mode\n",
		"names:      any name matching a.example (--allow), and that the ask URL",
		"; the names in 2 certificate file(s) (--cert-file)\n",
		"CA chain:   staging (https://",
		", then local\n",
		"CA chain:   local for names[0] *.b.example\n",
		"storage:    /var/lib/certkeeper\n",
		"orders:     at most 10 new orders per 1m0s per CA account, counted for every node on this storage (--order-limit)\n",
		"listen:     HTTPS on :443 (--tls-addr)\n",
		"PROXY:      header required from 10.0.0.0/8, 192.0.2.1, whose client address is used (--proxy-protocol-from)\n",
		"log level:  debug (--log-level)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "secret") {
		t.Errorf("summary shows the ask URL's password:\n%s", got)
	}
	s.Source = func(flag string) string {
		if flag == "--tls-addr" {
			return "tls_addr in c.yaml"
		}
		return "default"
	}
	got = strings.Join(s.Lines(), "\n")
	for _, want := range []string{"a.example (default)", "approves (default)", "(tls_addr in c.yaml)\n", "debug (default)"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary with Source lacks %q:\n%s", want, got)
		}
	}
	dev := engine.Summary{Command: "proxy", Dev: true, Allow: []string{"localhost"}}
	if l := dev.Lines(); l[0] != "proxy starting in development mode (local CA; not for the Internet)" || l[1] != "names:      localhost (development mode)" {
		t.Errorf("development mode summary = %q", l)
	}
	if l := (&engine.Summary{}).Lines(); !strings.Contains(l[1], "none on demand") || l[2] != "CA chain:   letsencrypt (https://acme-v02.api.letsencrypt.org/directory)" {
		t.Errorf("empty summary = %q", l)
	}
}

func TestSummaryWarnings(t *testing.T) {
	const restOfNotPublic = ": Let's Encrypt cannot issue for it"
	for _, tt := range []struct {
		name string
		s    engine.Summary
		want []string // each warning starts with one, in order
	}{
		{"allowed", engine.Summary{Allow: []string{"www.example.com"}}, nil},
		{"development mode", engine.Summary{Dev: true, Allow: []string{"localhost"}, CAs: []string{"local"}}, nil},
		{"ask", engine.Summary{Ask: "http://127.0.0.1:9000/allowed"}, nil},
		{"no policy", engine.Summary{CAs: []string{"local"}}, []string{"no --allow or --ask: no name gets a certificate on demand; served: only certificates already in --storage"}},
		{"no policy, managed", engine.Summary{CAs: []string{"local"}, Managed: []string{"a.test"}, CertFiles: 1, Rules: []engine.SummaryRule{{Pattern: "*.a.test"}}},
			[]string{"no --allow or --ask: no name gets a certificate on demand; served: only the --managed names and certificates already in --storage and the --cert-file ones (--wildcard and names entries"}},
		{"Let's Encrypt", engine.Summary{Allow: []string{"localhost", "www.example.com", "*.corp.internal"}, Managed: []string{"www.example.com,intranet"}},
			[]string{"--allow localhost" + restOfNotPublic, "--allow *.corp.internal" + restOfNotPublic, "--managed intranet" + restOfNotPublic}},
		{"IP allowed without a default name", engine.Summary{Command: "proxy", CAs: []string{"local"}, Allow: []string{"10.0.0.7", "intranet.corp"}},
			[]string{"--allow 10.0.0.7: clients that connect by IP address send no SNI, so they get no certificate: give --default-name 10.0.0.7"}},
		{"IP allowed and the default name", engine.Summary{Command: "proxy", CAs: []string{"local"}, Allow: []string{"10.0.0.7"},
			Served: []engine.SummaryName{{Flag: "--default-name", Name: "10.0.0.7"}}}, nil},
		{"connections fit", engine.Summary{Allow: []string{"www.example.com"}, MaxConns: 10000, FilesPerConn: 2, OpenFiles: 65536}, nil},
		{"limit unknown", engine.Summary{Allow: []string{"www.example.com"}, MaxConns: 10000}, nil},
		// A negative --max-conns is refused as bad usage; the warning must
		// not turn it into 18446744073709551606 open files beside that.
		{"negative connections", engine.Summary{Allow: []string{"www.example.com"}, MaxConns: -5, FilesPerConn: 2, OpenFiles: 16384}, nil},
		{"more connections than files", engine.Summary{Allow: []string{"www.example.com"}, MaxConns: 10000, FilesPerConn: 2, OpenFiles: 16384},
			[]string{"--max-conns 10000: one listener's connections take up to 20000 open files (2 each), but this process may open 16384"}},
		// The default too: a container's limit is low, and nobody gives
		// --max-conns (a trial).
		{"default connections, low limit", engine.Summary{Allow: []string{"www.example.com"}, FilesPerConn: 2, OpenFiles: 256},
			[]string{"--max-conns (default 10000): one listener's connections take up to 20000 open files (2 each), but this process may open 256"}},
		// Anyone may choose names under a wildcard: with Let's Encrypt,
		// and nothing but the per-client limit, one address spends the
		// domain's weekly budget (a security trial).
		{"open wildcard", engine.Summary{Command: "proxy", Allow: []string{"www.example.com", "*.example.com"}},
			[]string{"--allow *.example.com: anyone who reaches the proxy may choose names under it, and each new one is an order"}},
		{"open regexp", engine.Summary{Command: "proxy", CAs: []string{"letsencrypt"}, Allow: []string{`re:^[a-z]+\.example\.com$`}},
			[]string{"--allow re:"}},
		{"wildcard, order limit", engine.Summary{Command: "proxy", Allow: []string{"*.example.com"}, OrderLimit: "20/1h"}, nil},
		{"wildcard, ask", engine.Summary{Command: "proxy", Allow: []string{"*.example.com"}, Ask: "http://127.0.0.1:9000/allowed"}, nil},
		{"wildcard, own CA", engine.Summary{Command: "proxy", Allow: []string{"*.example.com"}, CAs: []string{"https://ca.example.com/dir"}}, nil},
		{"wildcard, server", engine.Summary{Command: "server", Allow: []string{"*.example.com"}},
			[]string{"--allow *.example.com: every client of the API (and whoever steals a token) may choose names under it"}},
		{"wildcard, server, order limit", engine.Summary{Command: "server", Allow: []string{"*.example.com"}, OrderLimit: "50/168h"}, nil},
		{"staging, a rule to another CA", engine.Summary{CAs: []string{"staging"}, Allow: []string{"localhost", "*.corp.internal"},
			Rules: []engine.SummaryRule{{Pattern: "*.internal", CAs: []string{"https://ca.corp.internal/acme/directory"}}}},
			[]string{"--allow localhost" + restOfNotPublic}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.Warnings()
			ok := len(got) == len(tt.want)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.HasPrefix(got[i], tt.want[i])
			}
			if !ok {
				t.Errorf("Warnings() = %q, want lines starting %q", got, tt.want)
			}
		})
	}
}

// TestSummaryTrustURL: with the local CA on a storage URL, the trust line
// does not print a command with the redacted URL, which would not open the
// storage (trial 33: "certkeeper ca root --storage
// postgres://REDACTED@host/db" failed as user REDACTED, without the URL's
// query or the password file); with a directory it prints the command.
func TestSummaryTrustURL(t *testing.T) {
	s := engine.Summary{Command: "proxy", Allow: []string{"a.example"}, CAs: []string{"local"},
		Storage: "postgres://REDACTED@127.0.0.1:5432/certkeeper"}
	got := strings.Join(s.Lines(), "\n")
	if strings.Contains(got, "--storage postgres://") || !strings.Contains(got,
		"certkeeper ca root > root.pem with this proxy's --storage URL (and its --storage-password-file)") {
		t.Errorf("trust line for a storage URL:\n%s", got)
	}
	s.Storage = "/var/lib/certkeeper"
	if got := strings.Join(s.Lines(), "\n"); !strings.Contains(got, "certkeeper ca root --storage /var/lib/certkeeper > root.pem") {
		t.Errorf("trust line for a directory:\n%s", got)
	}
}

// TestSummaryServedNotAllowed: a default name that no --allow pattern
// covers gets no certificate, and the summary warns of it when --allow
// alone decides (an ask URL or --require-own-ip may allow it); a route
// needs no --allow (policy.Config.Routed), and the names line says the
// routed names may get certificates, with routes alone too.
func TestSummaryServedNotAllowed(t *testing.T) {
	served := []engine.SummaryName{{Flag: "--route", Name: "b.example"}, {Flag: "--route", Name: "*.apps.example"},
		{Flag: "--route", Name: "a.example"}, {Flag: "--default-name", Name: "127.0.0.1"}}
	s := engine.Summary{Command: "proxy", Allow: []string{"a.example", "*.apps.example"}, CAs: []string{"local"}, Served: served}
	got := strings.Join(s.Warnings(), "\n")
	if want := "--default-name 127.0.0.1: no --allow pattern covers it"; !strings.Contains(got, want) {
		t.Errorf("warnings %q lack %q", got, want)
	}
	if strings.Contains(got, "--route") {
		t.Errorf("warnings %q name a route, which needs no --allow", got)
	}
	if got, want := strings.Join(s.Lines(), "\n"), "names:      the routed b.example, *.apps.example, a.example (--route); any name matching a.example"; !strings.Contains(got, want) {
		t.Errorf("summary lacks %q:\n%s", want, got)
	}
	alone := engine.Summary{Command: "proxy", CAs: []string{"local"}, Served: served[:1]}
	if got := strings.Join(alone.Lines(), "\n"); !strings.Contains(got, "names:      the routed b.example (--route)\n") {
		t.Errorf("routes alone: the names line says otherwise:\n%s", got)
	}
	if got := strings.Join(alone.Warnings(), "\n"); strings.Contains(got, "no name gets a certificate") {
		t.Errorf("routes alone: warned that no name gets a certificate:\n%s", got)
	}
	s.Ask = "http://127.0.0.1:9/ask"
	if got := strings.Join(s.Warnings(), "\n"); strings.Contains(got, "no --allow pattern covers") {
		t.Errorf("with an ask URL, which may allow them: %q", got)
	}
}
