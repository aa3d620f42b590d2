package certkeeper_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/http01"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestLateCertificateStored: a certificate the CA has signed is stored
// even when the issuance's context ends while it downloads (here, while
// the acme package waits for the CA's renewalInfo, which hangs): ordering
// it again would spend the CA's limits on a certificate already at hand. A
// trial saw such a certificate refused by storage for the deadline.
func TestLateCertificateStored(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	proxy := testca.NewFaultProxy(t, ca)
	h01 := &http01.Solver{}
	hs, err := h01.Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	st := filestore.New(t.TempDir())
	chain := &issuer.Chain{Issuers: []issuer.Issuer{&acmeca.Issuer{
		DirectoryURL: proxy.DirectoryURL(), HTTPClient: ca.HTTPClient(), Storage: st,
		Solvers: map[string]solver.Solver{acmeca.HTTP01: h01},
	}}}
	proxy.PauseAt("renewal-info")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	type result struct {
		got *certkeeper.Issued
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := certkeeper.Issue(ctx, st, certkeeper.IssueRequest{Names: []string{"late.a.test"}, Issuers: chain})
		done <- result{got, err}
	}()
	for deadline := time.Now().Add(30 * time.Second); proxy.Count("renewal-info") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no renewalInfo request within 30 s")
		}
	}
	cancel() // the certificate is downloaded; its renewalInfo is held
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Issue did not return within 30 s of its context's end")
	}
	if r.err != nil {
		t.Fatalf("Issue whose context ended after the download: %v", r.err)
	}
	data, err := st.Load(t.Context(), r.got.Key)
	if err != nil {
		t.Fatalf("the certificate is not stored: %v", err)
	}
	if len(data) == 0 {
		t.Error("the stored record is empty")
	}
}
