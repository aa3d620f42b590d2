package alpnproxy_test

import (
	"context"
	"errors"
	"log"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper/alpnproxy"
)

// A proxy in front of a web server on 127.0.0.1:443, with an ACME client
// answering tls-alpn-01 on 127.0.0.1:31443, drained on SIGTERM.
func ExampleServer() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:21443")
	if err != nil {
		log.Fatal(err)
	}
	srv := &alpnproxy.Server{ALPNAddr: "127.0.0.1:31443", FallbackAddr: "127.0.0.1:443"}
	go func() {
		<-ctx.Done()
		drain, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(drain)
	}()
	if err := srv.Serve(ln); !errors.Is(err, alpnproxy.ErrServerClosed) {
		log.Fatal(err)
	}
}

func ExampleParseClientHello() {
	var record []byte // the first TLS record a client sent
	if hello, err := alpnproxy.ParseClientHello(record); err == nil && hello.OffersACME() {
		log.Printf("tls-alpn-01 validation for %s", hello.ServerName)
	}
}
