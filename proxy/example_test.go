package proxy_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper/proxy"
)

// getCertificate stands for the certificate source, such as a certkeeper
// Manager's GetCertificate.
var getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

// This is `certkeeper proxy --route b.example.com=... --route
// '*.b.example.com=...' --backend http://127.0.0.1:8080` in a few lines:
// HTTPS on :443 in front of plain-HTTP sites, drained on SIGTERM.
func Example() {
	router, err := proxy.NewRouter(proxy.RouterConfig{
		Routes: []proxy.Route{
			{Pattern: "b.example.com", Backend: "http://127.0.0.1:8081"},
			{Pattern: "*.b.example.com", Backend: "http://127.0.0.1:8082"},
		},
		Default: "http://127.0.0.1:8080", // empty: port 80 on the IP the client connected to
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := &proxy.Server{
		TLSConfig: &tls.Config{
			GetCertificate: getCertificate,
			NextProtos:     []string{"h2", "http/1.1", "acme-tls/1"},
		},
		Handler: &proxy.Handler{Router: router},
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		drain, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(drain); err != nil {
			log.Print(err)
		}
	}()
	if err := srv.ListenAndServe(":443"); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func ExampleParseRoute() {
	for _, s := range []string{"b.test=http://127.0.0.1:8081", "b.test", "*.b.test=localhost:8080"} {
		r, err := proxy.ParseRoute(s)
		fmt.Printf("%+v %v\n", r, err)
	}
	// Output:
	// {Pattern:b.test Backend:http://127.0.0.1:8081} <nil>
	// {Pattern: Backend:} route "b.test": want NAME=URL, as in b.test=http://127.0.0.1:8081
	// {Pattern: Backend:} route "*.b.test": backend "localhost:8080": scheme "localhost" is not http or https (write a URL such as http://127.0.0.1:8080)
}
