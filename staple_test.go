package certkeeper_test

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/stapling"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// stapled returns the OCSP response a Go client receives from addr for
// name (nil for none) and the certificate served.
func stapled(t *testing.T, addr, name string) ([]byte, *x509.Certificate) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake for %s: %v", name, err)
	}
	defer conn.Close()
	cs := conn.ConnectionState()
	return cs.OCSPResponse, cs.PeerCertificates[0]
}

// waitFor polls cond every 100 ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestOCSPStapling: a local-CA certificate naming a real `openssl ocsp`
// responder is stapled by the Manager (openssl s_client sees a
// successful response); a revoked certificate is never stapled; a renewed
// certificate never carries its predecessor's staple and gets its own.
func TestOCSPStapling(t *testing.T) {
	st := filestore.New(t.TempDir())
	port := testsvc.FreePort(t)
	ca := &localca.CA{Storage: st, OCSPURL: "http://127.0.0.1:" + strconv.Itoa(port), Lifetime: 20 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}

	// The certificates are issued before the responder knows them; a
	// second Manager then loads them, as after a restart.
	first := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{ca}, Logger: slog.New(slog.DiscardHandler)}
	for _, n := range []string{"good.test", "revoked.test"} {
		if err := first.Cert(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	first.Close()
	leaf := func(name string) *x509.Certificate {
		data, err := st.Load(t.Context(), mustKey(t, name))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := storage.UnmarshalCertificate(mustKey(t, name), data)
		if err != nil {
			t.Fatal(err)
		}
		l, err := rec.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	interPEM, keyPEM, err := testsvc.LocalCAIssuer(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(interPEM)
	inter, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	responder := testsvc.OCSP(t, port, interPEM, keyPEM)
	good, revoked := leaf("good.test"), leaf("revoked.test")
	responder.Add(t, good)
	responder.Revoke(t, revoked)

	logs := &testsvc.Buffer{}
	var revokedEvents atomic.Int32
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{ca},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnEvent: func(e certkeeper.Event) {
			if e.Kind == certkeeper.Revoked && e.Names[0] == "revoked.test" {
				revokedEvents.Add(1)
			}
		}}
	events, stop := m.Watch()
	defer stop()
	addr := serveOn(t, m)

	t.Run("stapled", func(t *testing.T) {
		var out string
		if !waitFor(5*time.Second, func() bool {
			out = testsvc.SClientStatus(t, addr, "good.test")
			return strings.Contains(out, "OCSP Response Status: successful")
		}) {
			t.Fatalf("openssl s_client -status for good.test shows no successful OCSP response:\n%s\nlogs:\n%s", out, logs)
		}
		if !strings.Contains(out, "Cert Status: good") {
			t.Errorf("openssl s_client -status: no \"Cert Status: good\" in\n%s", out)
		}
		der, served := stapled(t, addr, "good.test")
		if served.SerialNumber.Cmp(good.SerialNumber) == 0 {
			if _, err := stapling.Verify(der, good, inter, time.Now()); err != nil {
				t.Errorf("staple served with good.test does not verify for it: %v", err)
			}
		}
	})

	t.Run("revoked", func(t *testing.T) {
		stapled(t, addr, "revoked.test") // loads it, which starts the fetch
		if !waitFor(5*time.Second, func() bool { return strings.Contains(logs.String(), "revoked according to its OCSP responder") }) {
			t.Fatalf("no revocation logged for revoked.test; logs:\n%s", logs)
		}
		for range 3 {
			if der, served := stapled(t, addr, "revoked.test"); der != nil && served.SerialNumber.Cmp(revoked.SerialNumber) == 0 {
				t.Fatalf("revoked.test served with a staple")
			}
		}
		if out := testsvc.SClientStatus(t, addr, "revoked.test"); !strings.Contains(out, "OCSP response: no response sent") {
			t.Errorf("openssl s_client -status for revoked.test:\n%s\nwant \"OCSP response: no response sent\"", out)
		}
		// The CA says it is revoked: it is replaced, with a new key, long
		// before the lifetime rule would renew it (the Revoked event comes
		// only from a record marked revoked).
		var served *x509.Certificate
		if !waitFor(10*time.Second, func() bool {
			_, served = stapled(t, addr, "revoked.test")
			return revokedEvents.Load() > 0 && served.SerialNumber.Cmp(revoked.SerialNumber) != 0
		}) {
			t.Fatalf("revoked.test not replaced within 10 s of its responder saying it is revoked (Revoked events: %d); logs:\n%s", revokedEvents.Load(), logs)
		}
		if served.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(revoked.PublicKey) {
			t.Errorf("the replacement of revoked.test has the revoked certificate's key")
		}
	})

	t.Run("renewed", func(t *testing.T) {
		var renewed *x509.Certificate
		deadline := time.After(30 * time.Second)
		for renewed == nil {
			select {
			case ev := <-events:
				if ev.Kind == certkeeper.Renewed && ev.Names[0] == "good.test" {
					renewed = leaf("good.test")
				}
			case <-deadline:
				t.Fatalf("good.test not renewed within 30 s; logs:\n%s", logs)
			}
		}
		if renewed.SerialNumber.Cmp(good.SerialNumber) == 0 {
			t.Fatal("renewal stored the same certificate")
		}
		// Until the responder knows it, the new certificate has no
		// staple; it never carries the old one.
		for range 5 {
			der, served := stapled(t, addr, "good.test")
			if served.SerialNumber.Cmp(good.SerialNumber) != 0 && der != nil {
				t.Fatalf("renewed certificate %x served with a staple before its responder knew it", served.SerialNumber)
			}
		}
		responder.Add(t, renewed)
		var der []byte
		if !waitFor(15*time.Second, func() bool {
			var served *x509.Certificate
			der, served = stapled(t, addr, "good.test")
			return der != nil && served.SerialNumber.Cmp(renewed.SerialNumber) == 0
		}) {
			t.Fatalf("renewed certificate never stapled; logs:\n%s", logs)
		}
		if _, err := stapling.Verify(der, renewed, inter, time.Now()); err != nil {
			t.Errorf("staple of the renewed certificate: %v", err)
		}
	})
}

func mustKey(t *testing.T, name string) string {
	t.Helper()
	k, err := storage.CertificateKey("local", name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
