package localca_test

import (
	"context"
	"log"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
)

// store stands for any storage.Storage, such as a filestore.
var store storage.Storage

func ExampleCA() {
	ctx := context.Background()
	ca := &localca.CA{Storage: store}

	// Print the root once, for clients' trust stores.
	rootPEM, err := ca.RootPEM(ctx)
	if err != nil {
		log.Fatal(err)
	}
	_ = rootPEM

	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		log.Fatal(err)
	}
	names := []string{"intranet.test", "10.0.0.1"}
	csr, err := issuer.NewCSR(key, names)
	if err != nil {
		log.Fatal(err)
	}
	cert, err := ca.Issue(ctx, issuer.Request{Names: names, CSR: csr})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("issued %v until %v", cert.Leaf.DNSNames, cert.Leaf.NotAfter)
}
