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
