package storage

import "context"

// Notifier is an optional interface of a Storage shared by several
// processes: it tells the others that a key changed, so a node that did
// not renew a certificate swaps the renewed one in at once rather than at
// its next periodic check. redisstore implements it with Redis pub/sub.
//
// Notices are hints, not a log: one may be lost (a subscriber that is
// reconnecting misses it), so subscribers still check storage
// periodically.
type Notifier interface {
	// Notify tells every subscriber, in this and other processes, that
	// key changed.
	Notify(ctx context.Context, key string) error

	// Subscribe delivers the keys of notices until ctx is done, when the
	// channel is closed. The backend reconnects by itself after an
	// outage; notices sent meanwhile are lost.
	Subscribe(ctx context.Context) (<-chan string, error)
}

// ChallengeKey is the key under which a challenge answer of type typ
// ("http-01", "tls-alpn-01") for id (an http-01 token, or the name a
// tls-alpn-01 validation asks for) is shared with the other nodes of a
// cluster while the challenge is in progress, so whichever node the CA's
// validation request reaches can answer it.
func ChallengeKey(typ, id string) (string, error) {
	if err := checkSegment("challenge type", typ); err != nil {
		return "", err
	}
	if err := checkSegment("challenge id", id); err != nil {
		return "", err
	}
	key := "challenges/" + typ + "/" + id + ".json"
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// OrdersKey is the key of the shared record of new orders placed with the
// CA account behind issuerID, which keeps every node of a cluster within
// one issuance limit.
func OrdersKey(issuerID string) (string, error) {
	if err := checkSegment("issuer ID", issuerID); err != nil {
		return "", err
	}
	return "state/orders/" + issuerID + ".json", nil
}

// OrdersLock is the name of the lock held while a node reads and updates
// OrdersKey(issuerID).
func OrdersLock(issuerID string) string { return "orders/" + issuerID }

// NotifyVia sends a change notice through s if it is a Notifier, and
// otherwise does nothing: what a wrapping Storage (encryption, metrics)
// does in its own Notify, so that wrapping keeps a cluster's notices.
func NotifyVia(ctx context.Context, s Storage, key string) error {
	if n, ok := s.(Notifier); ok {
		return n.Notify(ctx, key)
	}
	return nil
}

// SubscribeVia follows s's change notices if it is a Notifier; otherwise
// the channel stays silent until ctx is done (subscribers then rely on
// their periodic check). It is a wrapping Storage's Subscribe.
func SubscribeVia(ctx context.Context, s Storage) (<-chan string, error) {
	if n, ok := s.(Notifier); ok {
		return n.Subscribe(ctx)
	}
	ch := make(chan string)
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch, nil
}
