package certfile_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/selfsigned"
	"github.com/certkeeper/certkeeper/storage"
)

func ExampleDir_Write() {
	tmp, err := os.MkdirTemp("", "certfile")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		log.Fatal(err)
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		log.Fatal(err)
	}
	chainPEM, err := selfsigned.Certificate(key, []string{"*.example.test"}, 0)
	if err != nil {
		log.Fatal(err)
	}

	d := certfile.Dir(tmp)
	p, err := d.Write("*.example.test", keyPEM, chainPEM)
	if err != nil {
		log.Fatal(err)
	}
	rel := func(path string) string { r, _ := filepath.Rel(tmp, path); return filepath.ToSlash(r) }
	fmt.Println(rel(p.Key))
	fmt.Println(rel(p.Cert))
	_, chain, err := d.Read("*.example.test")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(chain[0].DNSNames)
	// Output:
	// private/wildcard_example.test.key
	// certs/wildcard_example.test.pem
	// [*.example.test]
}
