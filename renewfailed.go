package certkeeper

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// The nodes of a cluster draw the same renewal time for a certificate
// (from its serial), so they all check it at once and wait in turn for
// its issue lock. When the renewal failed on the node that had the lock,
// each of the others ordered it again (a cluster trial: 10 failed orders
// in 31 s for one name on two nodes, each failed validation counting
// against the CA's limits). The node that fails now marks the stored
// record (storage.Certificate.RenewalFailed) before it releases the lock,
// and a node that finds another node's mark of the last failedElsewhereFor
// (at most an eighth of the certificate's time left) backs off as if it
// had failed itself, ordering nothing.

// failedElsewhereFor is how long another node's failed renewal keeps this
// one from ordering the same renewal: longer than the renewal checks of
// a cluster's nodes take to pass the lock along, shorter than the first
// backoff step (a minute), so the next attempt, wherever it comes, orders.
const failedElsewhereFor = 30 * time.Second

// errFailedElsewhere is the error of a renewal not ordered because
// another node's order failed just before (renewalFailedElsewhere).
var errFailedElsewhere = errors.New("the renewal failed on another node just now")

// newNodeID is a random identifier of this Manager, for the marks it
// leaves in stored records.
func newNodeID() string { return strconv.FormatUint(rand.Uint64(), 36) }

// markRenewalFailed marks the stored record of prev (the certificate
// renewed, under key) with this node's failure to renew it, cause.
// Called while the issue lock is held; a mark that cannot be written only
// lets the other nodes order again, as before.
func (m *Manager) markRenewalFailed(ctx context.Context, key string, prev *x509.Certificate, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	rec, ok := m.recordOf(ctx, key, prev)
	if !ok {
		return
	}
	msg := cause.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	rec.RenewalFailed = &storage.RenewalFailure{At: time.Now().UTC(), Node: m.node, Error: msg}
	if data, err := storage.MarshalCertificate(rec); err == nil {
		_ = m.store.Store(ctx, key, data)
	}
}

// renewalFailedElsewhere returns errFailedElsewhere, with the other
// node's error, when the stored record of prev (under key) says another
// node failed to renew it in the last failedElsewhereFor.
func (m *Manager) renewalFailedElsewhere(ctx context.Context, key string, prev *x509.Certificate) error {
	rec, ok := m.recordOf(ctx, key, prev)
	if !ok || rec.RenewalFailed == nil {
		return nil
	}
	// At most an eighth of the time left: a short-lived certificate's
	// retries come seconds apart (a quarter of its time left at most), and
	// a process restarted on the same storage (a node ID of its own) must
	// not wait out the mark its predecessor left while its certificate
	// expires (CI caught a 60 s certificate expiring so).
	f, window := rec.RenewalFailed, min(failedElsewhereFor, time.Until(prev.NotAfter)/8)
	if ago := time.Since(f.At); f.Node == m.node || ago > window || ago < -window {
		return nil
	}
	return fmt.Errorf("%w (%s ago, not ordered again at once): %s", errFailedElsewhere, time.Since(f.At).Round(time.Second), f.Error)
}

// recordOf reads the record under key if it still holds prev.
func (m *Manager) recordOf(ctx context.Context, key string, prev *x509.Certificate) (*storage.Certificate, bool) {
	data, err := m.store.Load(ctx, key)
	if err != nil {
		return nil, false
	}
	rec, leaf, err := storage.UnmarshalCertificateLeaf(key, data)
	if err != nil || !leaf.Equal(prev) {
		return nil, false
	}
	return rec, true
}
