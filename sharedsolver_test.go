package certkeeper_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"github.com/redis/go-redis/v9"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// acmeIdentifierOID is the tls-alpn-01 certificate's extension holding the
// SHA-256 of the key authorization (RFC 8737 §3).
var acmeIdentifierOID = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// acmeIdentifier returns the acmeIdentifier extension of a DER certificate.
func acmeIdentifier(t *testing.T, der []byte) []byte {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Extensions {
		if e.Id.Equal(acmeIdentifierOID) {
			return e.Value
		}
	}
	t.Fatalf("certificate for %v has no acmeIdentifier extension", c.DNSNames)
	return nil
}

// TestSharedTLSALPNCleanUpKeepsOthersAnswer: node a presents a tls-alpn-01
// answer for a name and cleans it up; meanwhile node b presented its own
// answer for the same name (a later order). a's clean-up, whose deletion
// runs in the background, must not delete b's answer: a third node still
// answers the CA's validation handshake with b's, and b's clean-up leaves
// nothing behind. On each storage that holds shared answers.
func TestSharedTLSALPNCleanUpKeepsOthersAnswer(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(t *testing.T) storage.Storage
	}{
		{"filestore", func(t *testing.T) storage.Storage { return filestore.New(t.TempDir()) }},
		{"redis", func(t *testing.T) storage.Storage {
			st, err := redisstore.Open("redis://" + testsvc.Redis(t).Addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			testSharedTLSALPNCleanUp(t, b.open(t))
		})
	}
}

func testSharedTLSALPNCleanUp(t *testing.T, st storage.Storage) {
	ctx := t.Context()
	const name = "race.cluster.test"
	chal := func(token string) acme.Challenge {
		return acme.Challenge{Type: acmeca.TLSALPN01, Identifier: acme.Identifier{Type: "dns", Value: name},
			Token: token, KeyAuthorization: token + ".thumbprint"}
	}
	chalA, chalB := chal("tokenA"), chal("tokenB")
	a, b, c := localManager(t, st, nil), localManager(t, st, nil), localManager(t, st, nil)
	hello := &tls.ClientHelloInfo{ServerName: name, SupportedProtos: []string{"acme-tls/1"}}
	for _, m := range []*certkeeper.Manager{a, b, c} { // starts each Manager, as a handshake does
		if _, err := m.GetCertificate(hello); err == nil {
			t.Fatal("a node answers a tls-alpn-01 challenge before any was presented")
		}
	}
	solverA, solverB := a.Solvers()[acmeca.TLSALPN01], b.Solvers()[acmeca.TLSALPN01]
	if err := solverA.Present(ctx, chalA); err != nil {
		t.Fatal(err)
	}
	if err := solverB.Present(ctx, chalB); err != nil {
		t.Fatal(err)
	}
	if err := solverA.CleanUp(ctx, chalA); err != nil {
		t.Fatal(err)
	}
	a.Close() // waits for the background deletion

	got, err := c.GetCertificate(hello)
	if err != nil {
		t.Fatalf("after a's clean-up, another node cannot answer b's tls-alpn-01 challenge: %v", err)
	}
	want, err := acmez.TLSALPN01ChallengeCert(chalB)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(acmeIdentifier(t, got.Certificate[0]), acmeIdentifier(t, want.Certificate[0])) {
		t.Errorf("another node answers with a key authorization other than b's")
	}

	if err := solverB.CleanUp(ctx, chalB); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if keys, err := st.List(ctx, "challenges/"); err != nil || len(keys) != 0 {
		t.Errorf("shared challenge answers left behind: %v (%v)", keys, err)
	}
	if _, err := c.GetCertificate(hello); err == nil {
		t.Errorf("a node answers a tls-alpn-01 challenge after every clean-up")
	}
}

// TestALPNValidationForUnknownNameBoundedGets: anyone can send a
// ClientHello offering acme-tls/1 for any name; on a node of a cluster
// such handshakes for names nobody presented cost at most a bounded
// number of storage reads (GETs on Redis, never a listing: a SCAN walks
// the whole keyspace), however many there are (listener finding 3).
func TestALPNValidationForUnknownNameBoundedGets(t *testing.T) {
	rs, st := redisStorage(t)
	var logs testsvc.Buffer
	m := localManager(t, st, nil)
	m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	m.Cluster.SyncInterval = -1 // no periodic check during the count
	certkeeper.WaitRenewalScan(m)
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rc.Close()
	if err := rc.ConfigResetStat(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	const handshakes = 2000
	start := time.Now()
	for i := range handshakes {
		hello := &tls.ClientHelloInfo{ServerName: fmt.Sprintf("probe%d.unknown.test", i), SupportedProtos: []string{"acme-tls/1"}}
		if _, err := m.GetCertificate(hello); err == nil {
			t.Fatalf("handshake %d: a tls-alpn-01 answer for a name nobody presented", i)
		}
	}
	bound := certkeeper.ChallengeLookupBound(time.Since(start))
	info, err := rc.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	getsWithin(t, info, 1, bound, handshakes, "acme-tls/1 handshakes for names nobody presented")
	if n := strings.Count(logs.String(), "validation requests for unknown challenges over the limit"); n != 1 {
		t.Errorf("%d warnings about the limit, want 1:\n%s", n, logs.String())
	}
}

// TestAnnouncedChallengeAnswered: a node that presented an http-01
// challenge announces it through the storage's notices, and another node
// answers it from storage even while it reads nothing for challenges
// nobody announced (under a flood of made-up tokens); a made-up token is
// not read there.
func TestAnnouncedChallengeAnswered(t *testing.T) {
	_, st := redisStorage(t)
	a, b := localManager(t, st, nil), localManager(t, st, nil)
	for _, m := range []*certkeeper.Manager{a, b} {
		m.Cluster.SyncInterval = -1
		certkeeper.WaitRenewalScan(m)
		certkeeper.StopChallengeLookups(m)
	}
	get := func(m *certkeeper.Manager, token string) (int, string) {
		rec := httptest.NewRecorder()
		m.HTTPHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://h.cluster.test/.well-known/acme-challenge/"+token, nil))
		return rec.Code, rec.Body.String()
	}
	// b holds no certificate: it follows the notices from its start.
	chal := acme.Challenge{Type: acmeca.HTTP01, Identifier: acme.Identifier{Type: "dns", Value: "h.cluster.test"},
		Token: "announcedtoken", KeyAuthorization: "announcedtoken.thumbprint"}
	// The subscription may take a moment: present until b has heard.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := a.Solvers()[acmeca.HTTP01].Present(t.Context(), chal); err != nil {
			t.Fatal(err)
		}
		if code, body := get(b, chal.Token); code == http.StatusOK {
			if body != chal.KeyAuthorization {
				t.Fatalf("b answered %q, want %q", body, chal.KeyAuthorization)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never answered a's announced challenge")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A stored answer nobody announced is not read while lookups are
	// exhausted.
	data := fmt.Sprintf(`{"type":"http-01","identifier":{"type":"dns","value":"h.cluster.test"},"token":"quiet","key_authorization":"quiet.x","expires":%q}`,
		time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	if err := st.Store(t.Context(), "challenges/http-01/quiet.json", []byte(data)); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(b, "quiet"); code == http.StatusOK {
		t.Error("b read an answer nobody announced although its lookups were spent")
	}
}
