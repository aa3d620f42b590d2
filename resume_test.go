package certkeeper_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io/fs"
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
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestIssueResumesFinalizedOrder: an issuance that dies after asking the
// CA to sign (the process killed, the network cut) leaves its order and
// key in storage, and the next Issue for the same names takes the
// certificate from that order instead of ordering it again: a crash loop
// must not spend a CA's duplicate-certificate limit (Let's Encrypt: 5 a
// week). Three cases: the CA signed and the reply was lost; the finalize
// request never reached the CA (the order is ready: finalized now); a
// leftover record of a certificate already stored, met by its renewal
// (ordered anew, not resumed); a record naming an order at another host
// (not fetched).
func TestIssueResumesFinalizedOrder(t *testing.T) {
	proxy, st, chain := faultChain(t)
	issue := func(ctx context.Context, name string, replaces *x509.Certificate) (*certkeeper.Issued, error) {
		return certkeeper.Issue(ctx, st, certkeeper.IssueRequest{Names: []string{name}, Issuers: chain, Replaces: replaces})
	}
	waitFor := func(what string, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !done(); {
			if time.Now().After(deadline) {
				t.Fatalf("waited a minute for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// crash runs an Issue for name and cancels it, as a kill would end it,
	// once stopped says the finalize request is held by the proxy.
	crash := func(name string, stopped func() bool) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := issue(ctx, name, nil)
			errc <- err
		}()
		waitFor("the finalize request of "+name, stopped)
		cancel()
		if err := <-errc; err == nil {
			t.Fatalf("%s: issued although its finalize request was held", name)
		}
		proxy.Resume()
	}
	pendingOf := func(name string) ([]byte, error) {
		k, err := storage.PendingOrderKey(name, "")
		if err != nil {
			t.Fatal(err)
		}
		return st.Load(t.Context(), k)
	}
	orders := func() int { return proxy.Count("new-order") }

	// 1. The CA signed; the client never heard.
	proxy.PauseAfter("finalize")
	crash("signed.test", func() bool { return proxy.Held() >= 1 })
	left, err := pendingOf("signed.test")
	if err != nil {
		t.Fatalf("no pending order stored before the finalize request: %v", err)
	}
	before := orders()
	got, err := issue(t.Context(), "signed.test", nil)
	if err != nil {
		t.Fatalf("issuing again after the crash: %v", err)
	}
	if n := orders() - before; n != 0 {
		t.Errorf("%d new orders after the crash, want 0: the signed certificate was ordered again", n)
	}
	if n := proxy.Count("finalize"); n != 1 {
		t.Errorf("%d finalize requests, want the crashed one only", n)
	}
	if _, err := pendingOf("signed.test"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the pending order is still stored after the certificate (%v)", err)
	}
	if got.Key == "" || got.Record.URL == "" {
		t.Errorf("resumed certificate not stored: key %q, URL %q", got.Key, got.Record.URL)
	}

	// 2. The finalize request never reached the CA: the order is ready.
	proxy.PauseAt("finalize")
	finalizes := proxy.Count("finalize")
	crash("ready.test", func() bool { return proxy.Count("finalize") > finalizes })
	before = orders()
	if _, err := issue(t.Context(), "ready.test", nil); err != nil {
		t.Fatalf("issuing again after the crash: %v", err)
	}
	if n := orders() - before; n != 0 {
		t.Errorf("%d new orders after the crash, want 0: the validated order was not finalized", n)
	}

	// 3. A leftover record of the certificate already stored: its renewal
	// orders anew rather than hand back the certificate it replaces.
	k, _ := storage.PendingOrderKey("signed.test", "")
	if err := st.Store(t.Context(), k, left); err != nil {
		t.Fatal(err)
	}
	before = orders()
	renewed, err := issue(t.Context(), "signed.test", got.Certificate.Leaf)
	if err != nil {
		t.Fatalf("renewing with a leftover pending order: %v", err)
	}
	if n := orders() - before; n != 1 {
		t.Errorf("%d new orders for the renewal, want 1", n)
	}
	if renewed.Certificate.Leaf.SerialNumber.Cmp(got.Certificate.Leaf.SerialNumber) == 0 {
		t.Error("the renewal returned the certificate it renews")
	}

	// 4. A record naming an order elsewhere (storage is writable by
	// others): not fetched, and the name is ordered at the CA.
	var rec map[string]any
	if err := json.Unmarshal(left, &rec); err != nil {
		t.Fatal(err)
	}
	order := rec["order"].(map[string]any)
	order["url"] = "https://127.0.0.1:1/my-order/elsewhere"
	rec["names"], rec["created"] = []string{"elsewhere.test"}, time.Now().UTC()
	forged, _ := json.Marshal(rec)
	k, _ = storage.PendingOrderKey("elsewhere.test", "")
	if err := st.Store(t.Context(), k, forged); err != nil {
		t.Fatal(err)
	}
	before = orders()
	if _, err := issue(t.Context(), "elsewhere.test", nil); err != nil {
		t.Fatalf("issuing with a pending order at another host: %v", err)
	}
	if n := orders() - before; n != 1 {
		t.Errorf("%d new orders with a pending order at another host, want 1", n)
	}
}

// faultChain starts Pebble behind a fault proxy and returns the proxy, a
// filestore and an issuer chain ordering through the proxy, with http-01
// answered on Pebble's validation port.
func faultChain(t *testing.T) (*testca.FaultProxy, storage.Storage, *issuer.Chain) {
	t.Helper()
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
	return proxy, st, chain
}
