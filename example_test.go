package certkeeper_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/policy"
)

// A complete HTTPS server: certificates for example.com and its www name
// are obtained from Let's Encrypt at their first handshake and renewed in
// the background; port 80 answers http-01 and redirects to HTTPS.
func Example() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Hello, TLS!")
	})
	m := &certkeeper.Manager{
		Policy: policy.Allowlist("example.com", "www.example.com"),
		Email:  "ops@example.com",
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
	srv := &http.Server{Addr: ":443", TLSConfig: m.TLSConfig(), Handler: http.NotFoundHandler()}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
