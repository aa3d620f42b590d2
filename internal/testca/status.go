package testca

import (
	"context"
	"encoding/json"
	"math/big"
	"testing"
	"time"
)

// CertStatus is what Pebble's management API says of a certificate.
type CertStatus struct {
	// Status is "Valid" or "Revoked".
	Status string
	// Reason is the RFC 5280 revocation reason code, when revoked with one.
	Reason *uint
}

// CertStatus asks Pebble (GET /cert-status-by-serial/SERIAL) whether the
// certificate with serial is valid or revoked, and why.
func (c *CA) CertStatus(t testing.TB, serial *big.Int) CertStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := get(ctx, c.HTTPClient(), c.ManagementURL()+"/cert-status-by-serial/"+serial.Text(16))
	if err != nil {
		t.Fatalf("testca: certificate status of %s: %v", serial.Text(16), err)
	}
	var st CertStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("testca: certificate status of %s: %v", serial.Text(16), err)
	}
	return st
}
