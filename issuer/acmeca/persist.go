package acmeca

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/certkeeper/certkeeper/solver/dns01"
)

// IssuerDomainError is PersistRecords' refusal of an issuer domain name
// the CA does not list.
type IssuerDomainError struct {
	// Given is the name asked for; Listed the CA's.
	Given  string
	Listed []string
}

func (e *IssuerDomainError) Error() string {
	return fmt.Sprintf("issuer domain name %q: the CA lists %q", e.Given, e.Listed)
}

// PersistRecords returns the dns-persist-01 records
// (draft-ietf-acme-dns-persist) that authorize this issuer's account at
// the CA to get certificates for names (normalised), with no DNS change
// per order from then on: one record per name, for the CA's issuer
// domain name issuerDomain (empty: the first the CA lists; one it does
// not list is an *IssuerDomainError), for every subdomain too when
// wildcard, until the time given (zero: no end). It registers the
// account first if there is none yet in Storage. Setting the records is
// the caller's: at a DNS host, or with dns01.Persist.
func (iss *Issuer) PersistRecords(ctx context.Context, names []string, issuerDomain string, wildcard bool, until time.Time) ([]dns01.PersistRecord, error) {
	listed, err := iss.IssuerDomainNames(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case issuerDomain == "":
		issuerDomain = listed[0]
	case !slices.Contains(listed, issuerDomain):
		return nil, &IssuerDomainError{Given: issuerDomain, Listed: listed}
	}
	acct, err := iss.Account(ctx)
	if err != nil {
		return nil, err
	}
	recs := make([]dns01.PersistRecord, 0, len(names))
	for _, n := range names {
		recs = append(recs, dns01.PersistRecord{Name: n, Issuer: issuerDomain, Account: acct.Location, Wildcard: wildcard, Until: until})
	}
	return recs, nil
}
