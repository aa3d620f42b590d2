package certkeeper

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"golang.org/x/time/rate"

	"github.com/certkeeper/certkeeper/internal/nobody"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/http01"
	"github.com/certkeeper/certkeeper/solver/tlsalpn01"
	"github.com/certkeeper/certkeeper/storage"
)

// Challenge answers shared through storage, so that whichever node of a
// cluster the CA's validation request reaches can answer it.

// remoteAnswer tracks one challenge this node presented: answered closes
// when another node reports that it answered the CA's validation request,
// done when the challenge is cleaned up.
type remoteAnswer struct {
	answered, done chan struct{}
	once           sync.Once
}

// expect registers a challenge this node presented under key.
func (c *clusterState) expect(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.presented == nil {
		c.presented = make(map[string]*remoteAnswer)
	}
	if old := c.presented[key]; old != nil {
		close(old.done)
	}
	c.presented[key] = &remoteAnswer{answered: make(chan struct{}), done: make(chan struct{})}
}

// lookup returns the registration of the challenge under key, or nil.
func (c *clusterState) lookup(key string) *remoteAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.presented[key]
}

// answeredElsewhere notes another node's report that it answered the
// challenge under key.
func (c *clusterState) answeredElsewhere(key string) {
	if r := c.lookup(key); r != nil {
		r.once.Do(func() { close(r.answered) })
	}
}

// announce notes that another node presented the challenge under key
// (its notice), so that a validation request for it is always worth a
// storage read.
func (c *clusterState) announce(key string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.announced == nil {
		c.announced = make(map[string]time.Time)
	}
	if len(c.announced) >= maxAnnounced {
		for k, expires := range c.announced {
			if now.After(expires) {
				delete(c.announced, k)
			}
		}
		if len(c.announced) >= maxAnnounced {
			return
		}
	}
	c.announced[key] = now.Add(challengeTTL)
}

// mayLoad reports whether a validation request for the challenge under
// key, which this node does not hold, may cost a storage read: always for
// one another node announced, else within challengeLookupRate.
func (c *clusterState) mayLoad(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if expires, ok := c.announced[key]; ok {
		if now.Before(expires) {
			return true
		}
		delete(c.announced, key)
	}
	if c.lookups == nil {
		c.lookups = rate.NewLimiter(challengeLookupRate, challengeLookupBurst)
	}
	return c.lookups.AllowN(now, 1)
}

// forget ends the registration of the challenge under key.
func (c *clusterState) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.presented[key]; r != nil {
		close(r.done)
		delete(c.presented, key)
	}
}

// sharedChallenge is a challenge answer kept in storage while the
// challenge is in progress. The key authorization is not secret: it is
// what the CA fetches over plain HTTP.
type sharedChallenge struct {
	Type             string          `json:"type"`
	Identifier       acme.Identifier `json:"identifier"`
	Token            string          `json:"token"`
	KeyAuthorization string          `json:"key_authorization"`
	Expires          time.Time       `json:"expires"`
}

// sharedSolver wraps one of the Manager's own solvers: Present also
// writes the answer to storage, so any node sharing the storage can
// answer the CA's validation request (behind a load balancer it may reach
// any of them), and CleanUp removes it.
type sharedSolver struct {
	local solver.Solver
	typ   string
	m     *Manager
}

// challengesPrefix starts the keys of shared challenge answers
// (storage.ChallengeKey).
const challengesPrefix = "challenges/"

// challengeKey is the storage key of chal's shared answer: the token
// for http-01, the SNI for tls-alpn-01 (what a validation request names,
// so a node that did not present it finds it with one Load).
func (s *sharedSolver) challengeKey(chal acme.Challenge) (string, error) {
	if s.typ == acmeca.TLSALPN01 {
		id, err := storage.NameSegment(tlsalpn01.SNI(chal.Identifier))
		if err != nil {
			return "", err
		}
		return storage.ChallengeKey(s.typ, id)
	}
	return storage.ChallengeKey(s.typ, chal.Token)
}

// Present implements solver.Solver. A failure to share is logged, not
// returned: this node can still answer the validation itself.
func (s *sharedSolver) Present(ctx context.Context, chal acme.Challenge) error {
	if err := s.local.Present(ctx, chal); err != nil {
		return err
	}
	key, err := s.challengeKey(chal)
	if err == nil {
		// Subscribed before the CA is told to validate, so the notice
		// of another node answering it is not missed.
		s.m.startCluster()
		s.m.clu.expect(key)
		data, _ := json.Marshal(sharedChallenge{Type: s.typ, Identifier: chal.Identifier, Token: chal.Token,
			KeyAuthorization: chal.KeyAuthorization, Expires: time.Now().Add(challengeTTL).UTC()})
		sctx, cancel := context.WithTimeout(ctx, notifyTimeout)
		if err = storeVolatile(sctx, s.m.store, key, data); err == nil {
			s.m.announce(sctx, key)
		}
		cancel()
	}
	if err != nil {
		s.m.logger().Warn("sharing the challenge answer with other nodes; only this node can answer it",
			slog.String("name", chal.Identifier.Value), slog.String("challenge", s.typ), slog.Any("err", err))
	}
	return nil
}

// storeVolatile stores a shared challenge answer: without making it
// durable when the backend can (storage.VolatileStorer), as it is
// worthless after a crash, which saves filestore two fsyncs on the way
// to the CA's validation.
func storeVolatile(ctx context.Context, st storage.Storage, key string, data []byte) error {
	if v, ok := st.(storage.VolatileStorer); ok {
		return v.StoreVolatile(ctx, key, data)
	}
	return st.Store(ctx, key, data)
}

// CleanUp implements solver.Solver. The shared answer is removed from
// storage in the background (Close waits for it): the CA has validated,
// and the issuance, which waits for CleanUp before it finalizes the order,
// need not wait for a storage round trip (a deletion and, on filestore,
// an fsync) it does not depend on.
func (s *sharedSolver) CleanUp(ctx context.Context, chal acme.Challenge) error {
	err := s.local.CleanUp(ctx, chal)
	key, kerr := s.challengeKey(chal)
	if kerr != nil {
		return err
	}
	s.m.clu.forget(key)
	remove := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
		defer cancel()
		if derr := s.m.removeAnswer(sctx, key, chal.Token); derr != nil {
			s.m.logger().Debug("removing a shared challenge answer", slog.String("key", key), slog.Any("err", derr))
		}
	}
	if s.m.ctx.Err() != nil {
		remove() // closing: no new background work
		return err
	}
	s.m.wg.Add(1)
	go func() {
		defer s.m.wg.Done()
		remove()
	}()
	return err
}

// Answered implements solver.Answerer: the channel closes once the CA's
// validation request has been answered, by this node or — as its notice
// says — by another. Without notices, a validation answered elsewhere is
// seen by the issuer's polling.
func (s *sharedSolver) Answered(chal acme.Challenge) <-chan struct{} {
	var local <-chan struct{}
	if a, ok := s.local.(solver.Answerer); ok {
		local = a.Answered(chal)
	}
	key, err := s.challengeKey(chal)
	if err != nil {
		return local
	}
	r := s.m.clu.lookup(key)
	if r == nil {
		return local
	}
	out := make(chan struct{})
	go func() { // ends at CleanUp at the latest
		select {
		case <-local:
			close(out)
		case <-r.answered:
			close(out)
		case <-r.done:
		}
	}()
	return out
}

// reportAnswered tells the node that presented the challenge under key
// that this node answered the CA's validation request, so its issuer
// polls the CA at once.
func (m *Manager) reportAnswered(ctx context.Context, key string) {
	n, ok := m.store.(storage.Notifier)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	if err := n.Notify(ctx, key); err != nil {
		m.logger().Debug("reporting an answered challenge", slog.String("key", key), slog.Any("err", err))
	}
}

// announce tells the other nodes that this one stored the challenge
// answer under key (a notice, if the storage has them), so that they read
// it whatever the flood of made-up validation requests they get. A lost
// notice leaves them the bounded reads of mayLoad.
func (m *Manager) announce(ctx context.Context, key string) {
	n, ok := m.store.(storage.Notifier)
	if !ok {
		return
	}
	if err := n.Notify(ctx, announcePrefix+key); err != nil {
		m.logger().Debug("announcing a shared challenge answer", slog.String("key", key), slog.Any("err", err))
	}
}

// storedChallenge returns the shared challenge of type typ for id (an
// http-01 token, a tls-alpn-01 name segment) and its key, or nil if there
// is none in progress: at most one Load, whatever a client sends, and
// for a challenge no node announced, only within challengeLookupRate.
func (m *Manager) storedChallenge(ctx context.Context, typ, id string) (*sharedChallenge, string) {
	key, err := storage.ChallengeKey(typ, id)
	if err != nil {
		return nil, ""
	}
	if !m.clu.mayLoad(key, time.Now()) {
		if m.clu.lookupsLogged.Allow(time.Minute) {
			m.logger().Warn("validation requests for unknown challenges over the limit; answered without reading storage",
				slog.String("challenge", typ), slog.Int("per_second", challengeLookupRate))
		}
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	return m.loadChallenge(ctx, typ, key), key
}

// removeAnswer deletes the shared answer under key if it is still the
// one for token. A tls-alpn-01 answer is keyed by name: another node may
// have presented a new answer for the same name (its own order) since
// this one was written, and the clean-up, which runs in the background,
// must not delete it. What is left is the window between the Load and the
// Delete, one storage round trip, instead of the whole background delay.
func (m *Manager) removeAnswer(ctx context.Context, key, token string) error {
	data, err := m.store.Load(ctx, key)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	var c sharedChallenge
	if json.Unmarshal(data, &c) == nil && c.Token != token {
		return nil // another node's answer now
	}
	return m.store.Delete(ctx, key)
}

// loadChallenge returns the shared challenge of type typ under key, or
// nil if there is none or it has expired.
func (m *Manager) loadChallenge(ctx context.Context, typ, key string) *sharedChallenge {
	data, err := m.store.Load(ctx, key)
	if err != nil {
		return nil
	}
	var c sharedChallenge
	if json.Unmarshal(data, &c) != nil || c.Type != typ || time.Now().After(c.Expires) {
		return nil
	}
	return &c
}

// challengeHandler answers http-01 requests from this node's solver, and
// for tokens it does not hold, from the answers other nodes shared.
func (m *Manager) challengeHandler(fallback http.Handler) http.Handler {
	local := m.http01.Handler(fallback)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.URL.Path, http01.PathPrefix)
		if ok && nobody.Has(r) {
			// A validation request has no body: answered unread, and the
			// connection closed, a slow body holds nothing (a trial's
			// held port 80 for the 30 s of net/http's draining).
			nobody.Drop(w)
		}
		if ok && tok != "" && len(tok) <= 256 && !strings.Contains(tok, "/") &&
			(r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if _, held := m.http01.KeyAuthorization(tok); !held {
				if c, key := m.storedChallenge(r.Context(), acmeca.HTTP01, tok); c != nil {
					w.Header().Set("Content-Type", "text/plain")
					w.Header().Set("Cache-Control", "no-store")
					_, _ = w.Write([]byte(c.KeyAuthorization))
					m.logger().Debug("http-01 challenge answered for another node", slog.String("name", r.Host))
					m.reportAnswered(r.Context(), key)
					return
				}
			}
		}
		local.ServeHTTP(w, r)
	})
}

// challengeCertificate answers a tls-alpn-01 validation handshake from
// this node's solver, and for a name it has no challenge for, from the
// answer another node shared.
func (m *Manager) challengeCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := m.alpn.GetCertificate(hello)
	if err == nil || !errors.Is(err, tlsalpn01.ErrNoChallenge) {
		return cert, err
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	id, serr := storage.NameSegment(name)
	if serr != nil {
		return nil, err
	}
	ctx := hello.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	c, key := m.storedChallenge(ctx, acmeca.TLSALPN01, id)
	if c == nil {
		return nil, err
	}
	m.reportAnswered(ctx, key)
	cert, cerr := acmez.TLSALPN01ChallengeCert(acme.Challenge{Type: c.Type, Identifier: c.Identifier, Token: c.Token, KeyAuthorization: c.KeyAuthorization})
	if cerr != nil {
		return nil, fmt.Errorf("certkeeper: tls-alpn-01 answer for %s: %w", name, cerr)
	}
	m.logger().Debug("tls-alpn-01 challenge answered for another node", slog.String("name", name))
	return cert, nil
}
