package certkeeper_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/solver/dns01/rfc2136"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// A complete HTTPS server (docs/getting-started.md): certificates for
// a.example and its www name are obtained from Let's Encrypt at their
// first handshake and renewed in the background; port 80 answers http-01
// and redirects to HTTPS.
func Example() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello\n")) })
	m := &certkeeper.Manager{
		Policy: policy.Allowlist("a.example", "www.a.example"),
		Email:  "you@a.example",
	}
	log.Fatal(m.Serve()) // HTTPS on :443 for http.DefaultServeMux; http-01 and redirects on :80
}

// The smallest program (README.md): the zero Manager but for its policy
// gets certificates from Let's Encrypt and keeps them in the user's data
// directory.
func ExampleManager_Serve() {
	m := &certkeeper.Manager{Policy: policy.Allowlist("example.com")}
	log.Fatal(m.Serve())
}

// Two names (docs/library.md).
func ExampleManager_Serve_names() {
	m := &certkeeper.Manager{Policy: policy.Allowlist("example.com", "www.example.com")}
	log.Fatal(m.Serve()) // HTTPS on :443 for http.DefaultServeMux; http-01 + redirect on :80
}

// Every subdomain of a.example from one wildcard certificate, validated
// through dns-01 with RFC 2136 dynamic updates (docs/library.md), or
// through a dns-persist-01 record where one is in place.
func ExampleManager_wildcard() {
	secret := os.Getenv("TSIG_SECRET")
	m := &certkeeper.Manager{
		Policy:    policy.Allowlist("a.example", "*.a.example"),
		Wildcards: []string{"*.a.example"},
		Issuers: []issuer.Issuer{&acmeca.Issuer{Solvers: map[string]solver.Solver{
			acmeca.DNS01:        &dns01.Solver{Provider: &rfc2136.Provider{Server: "ns1.a.example:53", KeyName: "certkeeper", Secret: secret}},
			acmeca.DNSPersist01: &dns01.Persist{},
		}}},
	}
	log.Fatal(m.Serve())
}

// The Manager inside a server you configure yourself.
func ExampleManager_TLSConfig() {
	m := &certkeeper.Manager{Policy: policy.Allowlist("example.com", "*.example.com")}
	defer m.Close()
	go func() {
		// http-01 challenges and redirects to HTTPS.
		log.Fatal(http.ListenAndServe(":80", m.HTTPHandler(nil)))
	}()
	// A server without timeouts; with them, ConfigureServer.
	srv := &http.Server{Addr: ":443", TLSConfig: m.TLSConfig(), Handler: http.NotFoundHandler()}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}

// The Manager in a server with timeouts: net/http bounds a TLS handshake
// by them, and a first handshake for a new name waits while its
// certificate is obtained; ConfigureServer gives it the time.
func ExampleManager_ConfigureServer() {
	m := &certkeeper.Manager{Policy: policy.Allowlist("example.com")}
	defer m.Close()
	go func() { log.Fatal(http.ListenAndServe(":80", m.HTTPHandler(nil))) }()
	srv := &http.Server{Addr: ":443", ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13}} // kept: ConfigureServer adds the Manager to it
	m.ConfigureServer(srv)
	log.Fatal(srv.ListenAndServeTLS("", ""))
}

// HTTPS for localhost during development, from certkeeper's own CA and
// with no network (docs/library.md): the certificate is issued at the
// first handshake, and a client that trusts the CA's root (what
// "certkeeper ca root" prints, or "certkeeper ca trust" installs)
// verifies it.
func ExampleManager_localCA() {
	dir, err := os.MkdirTemp("", "certkeeper-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	st := filestore.New(dir) // certkeeper.DefaultStorageDir() to keep the root across runs
	ca := &localca.CA{Storage: st}
	m := &certkeeper.Manager{
		Policy:  policy.Allowlist("localhost"),
		Storage: st,
		Issuers: []issuer.Issuer{ca},
	}
	defer m.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello over HTTPS")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	rootPEM, err := ca.RootPEM(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
	// Output: hello over HTTPS
}

// Your own TLS server, another ACME CA, and the challenge that reaches
// this process (docs/library.md): TLS ends at a load balancer on 443,
// port 80 reaches this process, so http-01 is the challenge; the CA's
// HTTPS endpoint has a private root.
func Example_anotherCA() {
	rootsPEM, err := os.ReadFile("/etc/certkeeper/ca-roots.pem")
	if err != nil {
		log.Fatal(err)
	}
	client, err := engine.CAHTTPClient(rootsPEM) // the system's roots and these
	if err != nil {
		log.Fatal(err)
	}
	m := &certkeeper.Manager{
		Policy: policy.Allowlist("a.example"),
		Issuers: []issuer.Issuer{&acmeca.Issuer{
			DirectoryURL:   "https://ca.internal/acme/directory",
			HTTPClient:     client,
			Email:          "ops@a.example",
			ChallengeOrder: []string{acmeca.HTTP01},
		}},
		Logger: slog.Default(),
	}
	// http-01 on :80; the rest is redirected to https://NAME/ on 443, where the load balancer listens
	// (clients that reach :8443 itself: m.HTTPHandler(certkeeper.RedirectHTTPSPort("8443"))).
	go func() { log.Fatal(http.ListenAndServe(":80", m.HTTPHandler(nil))) }()
	srv := &http.Server{Addr: ":8443", ReadHeaderTimeout: 10 * time.Second}
	m.ConfigureServer(srv) // TLSConfig (acme-tls/1 too); a first handshake may outlast srv's timeouts
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
