package acmeca_test

import (
	"errors"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
)

// TestPersistRecords: on Pebble, the records name the CA's first issuer
// domain name and the account (registered on the way), one per name; an
// issuer domain name the CA does not list is refused.
func TestPersistRecords(t *testing.T) {
	e := newEnv(t, testca.Options{})
	iss := e.issuer("")
	until := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)
	recs, err := iss.PersistRecords(t.Context(), []string{"a.test", "b.test"}, "", true, until)
	if err != nil {
		t.Fatal(err)
	}
	listed, err := iss.IssuerDomainNames(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	acct, err := iss.Account(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Name != "a.test" || recs[1].Name != "b.test" {
		t.Fatalf("PersistRecords = %+v, want a.test and b.test", recs)
	}
	for _, r := range recs {
		if r.Issuer != listed[0] || r.Account != acct.Location || !r.Wildcard || !r.Until.Equal(until) {
			t.Errorf("record %+v, want issuer %s, account %s, wildcard, until %s", r, listed[0], acct.Location, until)
		}
	}
	var ierr *acmeca.IssuerDomainError
	if _, err := iss.PersistRecords(t.Context(), []string{"a.test"}, "not-the-ca.example", false, time.Time{}); !errors.As(err, &ierr) || ierr.Given != "not-the-ca.example" {
		t.Errorf("PersistRecords with an unlisted issuer domain = %v, want an *IssuerDomainError", err)
	}
}
