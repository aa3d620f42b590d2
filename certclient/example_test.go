package certclient_test

import (
	"crypto/tls"
	"crypto/x509"
	"log"
	"net/http"
	"os"

	"github.com/certkeeper/certkeeper/certclient"
)

// A Go HTTPS server whose certificates come from a certkeeper server.
func ExampleClient() {
	c := &certclient.Client{URL: "http://127.0.0.1:8999", Token: os.Getenv("CERTKEEPER_TOKEN")}
	defer c.Close()
	srv := &http.Server{Addr: ":443", TLSConfig: &tls.Config{GetCertificate: c.GetCertificate}}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}

// A client on another host, of a server whose API is HTTPS (certkeeper
// server --api-cert) with a certificate from a private CA: TLSConfig
// trusts that CA's root.
func ExampleClient_https() {
	pem, err := os.ReadFile("/etc/certkeeper/api-ca.pem") // the root that issued --api-cert
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		log.Fatal("no certificate in /etc/certkeeper/api-ca.pem")
	}
	c := &certclient.Client{
		URL:       "https://certkeeper.internal:8999",
		Token:     os.Getenv("CERTKEEPER_TOKEN"),
		TLSConfig: &tls.Config{RootCAs: roots},
	}
	defer c.Close()
	srv := &http.Server{Addr: ":443", TLSConfig: &tls.Config{GetCertificate: c.GetCertificate}}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
