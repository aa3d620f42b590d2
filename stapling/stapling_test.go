package stapling

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// The responses here are built with x/crypto/ocsp because they are
// malformed on purpose; the real responder (openssl ocsp) is exercised by
// the Manager's TestOCSPStapling.

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(t testing.TB, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert, key}
}

func (ca testCA) issue(t testing.TB, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	c, _ := ca.issueKey(t, tmpl)
	return c
}

func (ca testCA) issueKey(t testing.TB, tmpl *x509.Certificate) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// respond signs r with key; embed, if not nil, is the responder
// certificate sent in the response.
func (ca testCA) respond(t testing.TB, r ocsp.Response, embed *x509.Certificate, key crypto.Signer) []byte {
	t.Helper()
	responder := ca.cert
	if embed != nil {
		responder, r.Certificate = embed, embed
	}
	der, err := ocsp.CreateResponse(ca.cert, responder, r, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestVerify(t *testing.T) {
	now := time.Now()
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other")
	leaf := ca.issue(t, &x509.Certificate{DNSNames: []string{"a.test"}, OCSPServer: []string{"http://127.0.0.1:1"}})
	delegate, delegateKey := ca.issueKey(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ocsp"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}})
	notDelegate, notDelegateKey := ca.issueKey(t, &x509.Certificate{Subject: pkix.Name{CommonName: "server"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	good := ocsp.Response{Status: ocsp.Good, SerialNumber: leaf.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	with := func(f func(r *ocsp.Response)) ocsp.Response { r := good; f(&r); return r }
	tests := []struct {
		name    string
		der     []byte
		wantErr string // "" for a good staple
	}{
		{"signed by issuer", ca.respond(t, good, nil, ca.key), ""},
		{"issuer embedded", ca.respond(t, good, ca.cert, ca.key), ""},
		{"no nextUpdate, recent", ca.respond(t, with(func(r *ocsp.Response) { r.NextUpdate = time.Time{} }), nil, ca.key), ""},
		{"signed by another CA", other.respond(t, good, nil, other.key), "not signed by the issuer"},
		{"expired", ca.respond(t, with(func(r *ocsp.Response) { r.ThisUpdate, r.NextUpdate = now.Add(-2*time.Hour), now.Add(-time.Minute) }), nil, ca.key), "expired"},
		{"no nextUpdate, old", ca.respond(t, with(func(r *ocsp.Response) { r.ThisUpdate, r.NextUpdate = now.Add(-2*time.Hour), time.Time{} }), nil, ca.key), "expired"},
		{"thisUpdate in the future", ca.respond(t, with(func(r *ocsp.Response) { r.ThisUpdate = now.Add(time.Hour); r.NextUpdate = now.Add(2 * time.Hour) }), nil, ca.key), "future"},
		{"other serial", ca.respond(t, with(func(r *ocsp.Response) { r.SerialNumber = big.NewInt(7) }), nil, ca.key), "no response matching"},
		{"revoked", ca.respond(t, with(func(r *ocsp.Response) {
			r.Status, r.RevokedAt, r.RevocationReason = ocsp.Revoked, now.Add(-time.Minute), ocsp.KeyCompromise
		}), nil, ca.key), "revoked"},
		{"unknown", ca.respond(t, with(func(r *ocsp.Response) { r.Status = ocsp.Unknown }), nil, ca.key), "does not know"},
		{"delegated responder", ca.respond(t, good, delegate, delegateKey), ""},
		{"responder not for OCSP signing", ca.respond(t, good, notDelegate, notDelegateKey), "not for OCSP signing"},
		{"garbage", []byte("not DER"), "parsing"},
		{"error status", ocsp.InternalErrorErrorResponse, "parsing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Verify(tt.der, leaf, ca.cert, now)
			if tt.wantErr == "" {
				if err != nil || r == nil || r.Status != ocsp.Good {
					t.Fatalf("Verify = %v, %v; want a good response", r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify = %v; want an error containing %q", err, tt.wantErr)
			}
			if tt.name == "revoked" {
				var se *StatusError
				if !errors.As(err, &se) || se.Status != ocsp.Revoked || se.Reason != "keyCompromise" {
					t.Errorf("Verify of a revoked response = %#v, want a *StatusError with Revoked and reason keyCompromise", err)
				}
			}
		})
	}
}

func TestMustStaple(t *testing.T) {
	ca := newTestCA(t, "ca")
	feature, _ := asn1.Marshal([]int{5})
	must := ca.issue(t, &x509.Certificate{DNSNames: []string{"a.test"},
		ExtraExtensions: []pkix.Extension{{Id: oidTLSFeature, Value: feature}}})
	plain := ca.issue(t, &x509.Certificate{DNSNames: []string{"a.test"}})
	if !MustStaple(must) {
		t.Error("MustStaple(certificate with status_request feature) = false")
	}
	if MustStaple(plain) {
		t.Error("MustStaple(plain certificate) = true")
	}
}

func TestHasOCSP(t *testing.T) {
	for _, tt := range []struct {
		urls []string
		want bool
	}{
		{nil, false},
		{[]string{"ldap://x"}, false},
		{[]string{"http://ocsp.test"}, true},
		{[]string{"https://ocsp.test"}, true},
	} {
		if got := HasOCSP(&x509.Certificate{OCSPServer: tt.urls}); got != tt.want {
			t.Errorf("HasOCSP(%q) = %v, want %v", tt.urls, got, tt.want)
		}
	}
}

func TestRefreshAt(t *testing.T) {
	now := time.Now()
	r := &ocsp.Response{ThisUpdate: now, NextUpdate: now.Add(4 * time.Hour)}
	if got := RefreshAt(r, now); !got.Equal(now.Add(2 * time.Hour)) {
		t.Errorf("RefreshAt = %v, want half way", got.Sub(now))
	}
	old := &ocsp.Response{ThisUpdate: now.Add(-4 * time.Hour), NextUpdate: now.Add(time.Hour)}
	if got := RefreshAt(old, now); got.Before(now.Add(minRefresh)) {
		t.Errorf("RefreshAt past half-life = now%+v, want at least %v from now", got.Sub(now), minRefresh)
	}
}
