package certclient_test

import (
	"crypto/tls"
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
