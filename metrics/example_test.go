package metrics_test

import (
	"log"
	"net/http"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// A Manager whose metrics, storage latency included, are served on a
// loopback port for Prometheus.
func Example() {
	x := metrics.New()
	m := &certkeeper.Manager{
		Policy:  policy.Allowlist("a.example"),
		Storage: x.Storage(filestore.New("/var/lib/certkeeper")),
		OnEvent: x.Observe,
	}
	if err := x.Register(m); err != nil {
		log.Fatal(err)
	}
	go http.ListenAndServe("127.0.0.1:9100", x.Handler())
	log.Fatal(m.Serve())
}
