package statuspage_test

import (
	"log"
	"net/http"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/statuspage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// The status page of a Manager on loopback, with its recent events.
func Example() {
	st := filestore.New("/var/lib/certkeeper")
	var events statuspage.Recorder
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.example"), Storage: st, OnEvent: events.Observe}
	go http.ListenAndServe("127.0.0.1:9101", &statuspage.Handler{Storage: st, Events: &events})
	log.Fatal(m.Serve())
}
