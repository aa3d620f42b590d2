package stapling

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// FuzzVerify: an OCSP response comes over plain HTTP from the responder a
// certificate names, so anyone on the path can send any bytes, and a
// "revoked" answer makes the Manager replace the certificate. Verify must
// not panic on them, and must accept only a good answer for the leaf's
// serial, and report revoked only for that serial: whatever the fuzzer
// changes, it cannot sign.
func FuzzVerify(f *testing.F) {
	ca := newTestCA(f, "ca")
	leaf := ca.issue(f, &x509.Certificate{DNSNames: []string{"a.test"}, OCSPServer: []string{"http://127.0.0.1:1"}})
	delegate, delegateKey := ca.issueKey(f, &x509.Certificate{Subject: pkix.Name{CommonName: "ocsp"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}})
	now := time.Now()
	good := ocsp.Response{Status: ocsp.Good, SerialNumber: leaf.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	revoked := good
	revoked.Status, revoked.RevokedAt, revoked.RevocationReason = ocsp.Revoked, now.Add(-time.Minute), ocsp.KeyCompromise
	f.Add(ca.respond(f, good, nil, ca.key))
	f.Add(ca.respond(f, revoked, nil, ca.key))
	f.Add(ca.respond(f, good, delegate, delegateKey))
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x01}) // malformedRequest
	f.Fuzz(func(t *testing.T, der []byte) {
		r, err := Verify(der, leaf, ca.cert, now)
		if err == nil && (r == nil || r.Status != ocsp.Good || r.SerialNumber.Cmp(leaf.SerialNumber) != 0) {
			t.Fatalf("Verify accepted %+v", r)
		}
		var se *StatusError
		if errors.As(err, &se) && (r == nil || r.SerialNumber.Cmp(leaf.SerialNumber) != 0 || se.Reason == "" && se.Status == ocsp.Revoked) {
			t.Fatalf("Verify reported %v for response %+v", err, r)
		}
	})
}
