package certserver_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"golang.org/x/crypto/ocsp"
)

// TestOCSPEndpoint: for a local-CA certificate whose OCSP responder
// (real openssl ocsp) says good, GET /v1/ocsp/{name} answers the staple
// as DER with caching headers (If-None-Match gets 304), and the JSON
// answer carries the same staple.
func TestOCSPEndpoint(t *testing.T) {
	st := filestore.New(t.TempDir())
	port := testsvc.FreePort(t)
	ca := &localca.CA{Storage: st, OCSPURL: "http://127.0.0.1:" + strconv.Itoa(port), Logger: slog.New(slog.DiscardHandler)}
	// Issued before the responder knows it; the serving Manager loads it.
	first := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{ca}, Logger: slog.New(slog.DiscardHandler)}
	if err := first.Cert(t.Context(), "good.test"); err != nil {
		t.Fatal(err)
	}
	first.Close()
	key, err := storage.CertificateKey(ca.ID(), "good.test")
	if err != nil {
		t.Fatal(err)
	}
	data, err := st.Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := storage.UnmarshalCertificate(key, data)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := rec.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	interPEM, keyPEM, err := testsvc.LocalCAIssuer(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	testsvc.OCSP(t, port, interPEM, keyPEM).Add(t, leaf)

	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{ca}, Logger: slog.New(slog.DiscardHandler)}
	t.Cleanup(func() { m.Close() })
	s := httptest.NewServer(&certserver.Handler{Manager: m, Tokens: []string{token1}, Audit: slog.New(slog.DiscardHandler)})
	t.Cleanup(s.Close)

	var resp *http.Response
	var der []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, der = get(t, s.URL+"/v1/ocsp/good.test", token1)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("GET /v1/ocsp/good.test = %d %s, want 200 within 10 s", resp.StatusCode, der)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r, err := ocsp.ParseResponse(der, nil)
	if err != nil || r.Status != ocsp.Good || r.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("staple: %v (status %d), want a good response for the leaf", err, r.Status)
	}
	h := resp.Header
	// openssl ocsp gives no nextUpdate unless told: the certificate's ttl.
	if h.Get("Content-Type") != "application/ocsp-response" || h.Get("ETag") == "" || h.Get("Last-Modified") == "" ||
		!strings.HasPrefix(h.Get("Cache-Control"), "max-age=") || strings.HasPrefix(h.Get("Cache-Control"), "max-age=0,") {
		t.Errorf("headers %v, want the OCSP type, ETag, Last-Modified, Cache-Control max-age > 0", h)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/v1/ocsp/good.test", nil)
	req.Header.Set("Authorization", "Bearer "+token1)
	req.Header.Set("If-None-Match", h.Get("ETag"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %v %v, want 304", resp.StatusCode, err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	_, body := get(t, s.URL+"/v1/certificates/good.test", token1)
	var c certserver.Certificate
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.OCSPStaple, der) {
		t.Error("the JSON answer's ocsp_staple differs from /v1/ocsp's")
	}
}
