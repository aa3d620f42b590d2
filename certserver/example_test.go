package certserver_test

import (
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/policy"
)

// A certificate server for the names under a.example, its tokens in a
// file, its audit log apart from the debug log.
func ExampleHandler() {
	tokens, err := certserver.LoadTokens("/etc/certkeeper/tokens")
	if err != nil {
		log.Fatal(err)
	}
	audit, err := os.OpenFile("/var/log/certkeeper-audit.log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	m := &certkeeper.Manager{Policy: policy.Allowlist("*.a.example"), Email: "you@a.example"}
	defer m.Close()
	h := &certserver.Handler{Manager: m, Tokens: tokens, Audit: slog.New(slog.NewJSONHandler(audit, nil))}
	srv := &http.Server{Addr: "127.0.0.1:8999", Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
