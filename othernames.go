package certkeeper

import (
	"context"
	"crypto/x509"
	"io/fs"
	"slices"
	"sync"
	"time"
)

// otherNames finds a stored certificate by a name other than its first:
// a record's key is made from its first name only (storage.CertificateKey),
// so a certificate for "a.example" and "b.example" (Cert with two names,
// cert issue -d a.example -d b.example, a wildcard with its zone) was
// found by a handshake for b.example only while it was in memory. Once
// it left the bounded cache, or after a restart, that handshake ordered a
// certificate of its own, or, with no Policy, failed.
//
// The index holds the other names of the records this Manager stored or
// published, of those the start-up scan read and of those other nodes
// stored since (their change notices, else the expiry sweep:
// learnStored): an entry per extra name of a certificate in storage,
// bounded by storage as the renewal schedule is, not by the names
// handshakes ask for. Until one of those reads it, a record another node
// stored is found by its first name only.
type otherNames struct {
	mu sync.Mutex
	// keys maps variant+"/"+name to the key of the record holding name
	// as one of its other names.
	keys map[string]string
}

// scanWait bounds how long a first issue waits for the start-up scan to
// have indexed the stored records' other names: a name that a stored
// certificate holds as an other name, asked for just after a start, was
// ordered again (a trial's program restarted and asked at once); a
// storage so large that its scan takes longer delays new names by this
// at most.
const scanWait = 5 * time.Second

// waitScan waits, at most scanWait or until ctx ends, for the start-up
// scan to end.
func (m *Manager) waitScan(ctx context.Context) {
	scanned := m.renew.scanned
	if scanned == nil {
		return
	}
	t := time.NewTimer(scanWait)
	defer t.Stop()
	select {
	case <-scanned:
	case <-ctx.Done():
	case <-t.C:
	}
}

// note records the other names of the record under key.
func (o *otherNames) note(key, variant string, names []string) {
	if len(names) < 2 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.keys == nil {
		o.keys = make(map[string]string)
	}
	for _, n := range names[1:] {
		o.keys[variant+"/"+n] = key
	}
}

// find returns the key of a record holding name as an other name.
func (o *otherNames) find(name, variant string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	key, ok := o.keys[variant+"/"+name]
	return key, ok
}

// drop forgets name's entry if it still points at key: the record is
// gone or no longer holds the name.
func (o *otherNames) drop(name, variant, key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.keys[variant+"/"+name] == key {
		delete(o.keys, variant+"/"+name)
	}
}

// forget drops every entry pointing at key (a record deleted).
func (o *otherNames) forget(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, v := range o.keys {
		if v == key {
			delete(o.keys, k)
		}
	}
}

// loadOtherName is loadStoredAfter's last resort: the record that holds
// one of candidates as an other name, if the index knows one (prev as for
// loadStoredAfter); fs.ErrNotExist if none.
func (m *Manager) loadOtherName(ctx context.Context, candidates []string, variant string, prev *x509.Certificate) (*managed, error) {
	for _, n := range candidates {
		key, ok := m.others.find(n, variant)
		if !ok {
			continue
		}
		e, err := m.loadKey(ctx, key, prev)
		switch {
		case err == nil && slices.Contains(e.names, n):
			return e, nil
		case err == nil, isNotFound(err) && prev == nil:
			m.others.drop(n, variant, key) // replaced by one without n, or gone
		case !isNotFound(err):
			return nil, err
		}
	}
	return nil, fs.ErrNotExist
}
