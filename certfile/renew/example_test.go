package renew_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/certfile/renew"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// A Renewer keeps a directory of certificate files renewed, here from
// certkeeper's local CA (no network). A program runs it from time to time
// (cron, a ticker): each run issues what Want lists but is missing, and
// renews the pairs that are due.
func ExampleRenewer() {
	tmp, err := os.MkdirTemp("", "renew")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	st := filestore.New(filepath.Join(tmp, "state"))

	want, err := renew.ParseWant(strings.NewReader("# the intranet\nintranet.test www.intranet.test\n"))
	if err != nil {
		log.Fatal(err)
	}
	r := &renew.Renewer{
		Dir:     certfile.Dir(filepath.Join(tmp, "ssl")),
		Storage: st,
		Issuers: func(ctx context.Context, s renew.Settings) (*issuer.Chain, func(), error) {
			return &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}, nil, nil
		},
		Want: want,
	}
	for run := 1; run <= 2; run++ {
		results, err := r.Run(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		for _, res := range results {
			fmt.Println(run, res.Base, res.Names, res.Action)
		}
	}
	r.Force = true
	results, err := r.Run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(results[0].Base, results[0].Action, filepath.Base(results[0].Paths.Cert))
	// Output:
	// 1 intranet.test [intranet.test www.intranet.test] issued
	// 2 intranet.test [intranet.test www.intranet.test] not due
	// intranet.test renewed intranet.test.pem
}

// Settings are what a Renewer remembers per certificate in
// DIR/renewal/NAME.conf: the remembered ones, with the run's Override on
// top, are what the certificate is renewed with, and are written back.
func ExampleSettings() {
	remembered, err := renew.ParseSettings(strings.NewReader(`
version = 1
ca = https://acme.internal.example/directory
challenge = tls-alpn-01
tls_alpn_addr = 127.0.0.1:8443
`))
	if err != nil {
		log.Fatal(err)
	}
	remembered.Override(renew.Settings{Profile: "shortlived"}) // cert renew --profile shortlived
	text, err := remembered.MarshalText()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(text))
	// Output:
	// # certkeeper renewal settings: read and rewritten by certkeeper cert renew (see docs/cli.md)
	// version = 1
	// ca = https://acme.internal.example/directory
	// profile = shortlived
	// challenge = tls-alpn-01
	// tls_alpn_addr = 127.0.0.1:8443
}
