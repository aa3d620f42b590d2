package certdeploy_test

import (
	"context"
	"log"

	"github.com/certkeeper/certkeeper/certdeploy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// Hand every stored certificate to haproxy, which checks the files before
// it is reloaded.
func Example() {
	ctx := context.Background()
	certs, err := certdeploy.Stored(ctx, filestore.New("/var/lib/certkeeper"), nil)
	if err != nil {
		log.Fatal(err)
	}
	d := &certdeploy.Deployer{
		Format: certdeploy.HAProxy,
		Dir:    "/etc/haproxy/certs",
		Check:  "haproxy -c -f /etc/haproxy/haproxy.cfg",
		Reload: "systemctl reload haproxy",
	}
	if _, err := d.Deploy(ctx, certs); err != nil {
		log.Fatal(err) // a *certdeploy.CheckError names the certificate; the old files stay
	}
}
