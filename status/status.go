// Package status is certkeeper's status model: what state each stored
// certificate is in, which names keep failing, and the one definition of
// "expiring". "certkeeper status", the status page and /status.json
// (package statuspage), alerts (package alert) and the Manager's metrics
// all read it, so they always agree.
//
// It reads storage and the state a Manager keeps there (last-seen times,
// the failures of the names that keep failing); it does not act on
// certificates and serves nothing.
package status

import (
	"path"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// The states of a certificate, from good to bad.
const (
	Fine     = "fine"     // nothing to do until NextRenewal
	Renewing = "renewing" // due for renewal now
	Failing  = "failing"  // the last attempt (renewal or first issue) failed; LastError says why
	Revoked  = "revoked"  // revoked at its CA (Cert.Revoked says why); a running Manager replaces it at once
	Expiring = "expiring" // close to expiry (see IsExpiring)
	Expired  = "expired"  // past NotAfter
	Damaged  = "damaged"  // the stored record cannot be read; LastError says why
)

// Cert is one certificate's status: what "certkeeper status --json" prints
// and what /status.json serves, field for field.
type Cert struct {
	Names  []string `json:"names"`
	Issuer string   `json:"issuer"`
	// NotAfter is the certificate's expiry; zero (and left out of JSON)
	// when there is no certificate: a damaged record, a failing first
	// issuance.
	NotAfter time.Time `json:"not_after,omitzero"`
	// NotBefore is the start of the certificate's validity: with NotAfter
	// it gives the lifetime. Zero (and left out of JSON) when NotAfter is.
	NotBefore time.Time `json:"not_before,omitzero"`
	// NextRenewal is when the certificate is due (planned from the CA's
	// renewal window a Manager last asked, kept in the record, else by the
	// lifetime rule), or, after a
	// failed attempt, when the next attempt is. It is zero for a failing
	// first issuance that waits for a handshake (see FirstIssue).
	NextRenewal time.Time `json:"next_renewal,omitzero"`
	State       string    `json:"state"`
	OnDemand    bool      `json:"on_demand"`
	// LastSeen is when a handshake last asked for it (written by a
	// running Manager every few minutes).
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Key       string    `json:"key"`
	LastError string    `json:"last_error,omitempty"`
	// LastErrorAt is when the last attempt failed.
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// RetryAt is the earliest time the failed attempt is tried again.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// FirstIssue reports that there is no certificate yet: the name's
	// first issuance is failing. Unless NextRenewal is set (a name the
	// Manager keeps, retried on its own), it is tried again only when a
	// handshake asks for the name, from RetryAt on. Such a name is not a
	// failing renewal: alerts call it issuance_failing, and metrics
	// count it apart.
	FirstIssue bool `json:"first_issue,omitempty"`
	// NotAllowed, set by a reader that knows the serving policy (the
	// status page of a running proxy or server), says why the policy no
	// longer allows the certificate's primary name: a handshake for it
	// is refused once the stored certificate is gone, and it should be
	// deleted or allowed again.
	NotAllowed string `json:"not_allowed,omitempty"`
	// Revoked is the reason the certificate was revoked for
	// (storage.Certificate.Revoked), if it was.
	Revoked string `json:"revoked,omitempty"`
	// Overdue reports a certificate due for renewal (Renewing) since
	// NextRenewal, longer ago than a renewal takes (OverdueAfter), with
	// no failure kept: nothing renewed it. No proxy or server runs on
	// this storage, or cert renew did not run. A check calls it a
	// warning; it was OK, "a running certkeeper is on it", for weeks of
	// an ops trial's stopped proxy.
	Overdue bool `json:"overdue,omitempty"`
}

// DefaultUnusedAfter is how long a Manager renews an on-demand
// certificate no handshake asks for (Manager.UnusedAfter's default):
// after it, the certificate is let lapse on purpose, and status does not
// call it overdue.
const DefaultUnusedAfter = 30 * 24 * time.Hour

// OverdueAfter is how long past its due time a certificate of the
// lifetime given may wait for its renewal before status calls it
// overdue: two days (a cert renew timer runs daily), or a tenth of a
// short lifetime.
func OverdueAfter(lifetime time.Duration) time.Duration {
	if lifetime <= 0 {
		return 48 * time.Hour
	}
	return min(48*time.Hour, lifetime/10)
}

// Covers reports whether s is a certificate for name (normalised): one of
// its names is name, or a wildcard *.ZONE covers it (one label under ZONE).
// An entry without names (a damaged record) is for the name its storage
// key is built from (storage.CertificateKeyVariant).
func (s Cert) Covers(name string) bool {
	if len(s.Names) == 0 {
		seg, err := storage.NameSegment(name)
		base := strings.TrimSuffix(path.Base(s.Key), ".json")
		return err == nil && strings.HasPrefix(s.Key, storage.CertificatePrefix("")) &&
			(base == seg || strings.HasPrefix(base, seg+"_") && !strings.Contains(base[len(seg):], "."))
	}
	_, zone, _ := strings.Cut(name, ".")
	for _, n := range s.Names {
		if n == name || zone != "" && n == "*."+zone {
			return true
		}
	}
	return false
}

// IsExpiring reports whether a certificate valid from notBefore to
// notAfter counts as expiring at now. This is the one definition of
// "expiring":
//
//   - a certificate certkeeper renews (renewed true) is expiring with less
//     than a tenth of its lifetime left: renewal starts at a third, so by
//     then renewals have failed for a long while;
//   - a certificate nobody but its owner renews (a certificate file,
//     renewed false) is expiring with less than a third of its lifetime
//     left, the point where certkeeper would have renewed it, or 14 days
//     but at most half its lifetime (a 10-day certificate was expiring
//     from the day it was made).
//
// An expired certificate (now at or past notAfter) is not "expiring".
func IsExpiring(notBefore, notAfter, now time.Time, renewed bool) bool {
	left := notAfter.Sub(now)
	if left <= 0 {
		return false
	}
	life := notAfter.Sub(notBefore)
	if renewed {
		return left < life/10
	}
	return left < life/3 || left < min(14*24*time.Hour, life/2)
}

// state is a stored certificate's state; the worst applies.
func state(s Cert, notBefore time.Time, now time.Time) string {
	switch {
	case !now.Before(s.NotAfter):
		return Expired
	case IsExpiring(notBefore, s.NotAfter, now, true):
		return Expiring
	case s.Revoked != "":
		return Revoked
	case s.LastError != "":
		return Failing
	case !s.NextRenewal.After(now):
		return Renewing
	}
	return Fine
}

// FileState is the state of a certificate file certkeeper serves but does
// not renew: Expired, Expiring or Fine.
func FileState(notBefore, notAfter, now time.Time) string {
	switch {
	case !now.Before(notAfter):
		return Expired
	case IsExpiring(notBefore, notAfter, now, false):
		return Expiring
	}
	return Fine
}
