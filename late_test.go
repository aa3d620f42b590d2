package certkeeper_test

import (
	"context"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
)

// TestLateCertificateStored: a certificate the CA has signed is stored
// even when the issuance's context ends while it downloads (here, while
// the acme package waits for the CA's renewalInfo, which hangs): ordering
// it again would spend the CA's limits on a certificate already at hand. A
// trial saw such a certificate refused by storage for the deadline.
func TestLateCertificateStored(t *testing.T) {
	proxy, st, chain := faultChain(t)
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
