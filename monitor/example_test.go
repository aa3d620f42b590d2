package monitor_test

import (
	"log"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/monitor"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// A Manager with metrics on loopback and a status page anyone with the
// token may read.
func Example() {
	st := filestore.New("/var/lib/myapp/certs")
	mon := monitor.New(monitor.Config{
		MetricsAddr: "127.0.0.1:9100",
		StatusAddr:  ":9101",
		StatusToken: "a-long-random-token",
	})
	m := &certkeeper.Manager{Storage: mon.Storage(st), OnEvent: mon.Observe}
	defer m.Close()
	if err := mon.Start(m, st); err != nil {
		log.Fatal(err)
	}
	defer mon.Close()
	// ... serve m.TLSConfig() ...
}
