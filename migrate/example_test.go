package migrate_test

import (
	"context"
	"fmt"
	"log"

	"github.com/certkeeper/certkeeper/migrate"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// Take over certbot's certificates and accounts, reporting what could not
// be imported.
func Example() {
	state, err := migrate.Read(migrate.Certbot, "/etc/letsencrypt", migrate.Options{})
	if err != nil {
		log.Fatal(err)
	}
	actions, err := migrate.Import(context.Background(), filestore.New("/var/lib/certkeeper"), state, migrate.ImportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range actions {
		fmt.Println(a.Result, a.Kind, a.Subject, a.Source, a.Why)
	}
}
