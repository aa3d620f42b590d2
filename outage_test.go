package certkeeper_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// TestRenewalScanWaitsForStorage: a node started while its Redis is down
// (a host that boots certkeeper before Redis) lists the stored
// certificates once Redis answers and schedules their renewals; before,
// the start-up scan gave up and only a restart scheduled them (trial 11).
// Real Redis, stopped and started again on the same address.
func TestRenewalScanWaitsForStorage(t *testing.T) {
	rs, st := redisStorage(t)
	rs.Stop()
	var logs testsvc.Buffer
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	defer m.Close()
	key, _ := storage.CertificateKey("local", "a.test")
	certkeeper.Scheduled(m, key) // starts the Manager, and its scan
	const failed = "retrying until the storage answers"
	if !waitFor(10*time.Second, func() bool { return strings.Contains(logs.String(), failed) }) {
		t.Fatalf("no warning that the scan waits for the storage:\n%s", logs.String())
	}

	// Redis is back, holding a certificate another node obtained.
	rs.Restart(t)
	fs := filestore.New(t.TempDir())
	other := &certkeeper.Manager{Storage: fs, Issuers: []issuer.Issuer{&localca.CA{Storage: fs}}}
	defer other.Close()
	if err := other.Cert(t.Context(), "a.test"); err != nil {
		t.Fatal(err)
	}
	data, err := fs.Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store(t.Context(), key, data); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { _, ok := certkeeper.Scheduled(m, key); return ok }) {
		t.Fatalf("the stored certificate was not scheduled once Redis answered:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "storage answers again") {
		t.Errorf("no note that the scan went through:\n%s", logs.String())
	}
}

// TestHousekeepingSweepsLeftovers: a shared challenge answer left by an
// issuance that was cut short (a killed process) is deleted once past its
// expiry, and a pending order (with its private key) once too old to be
// resumed; those in progress stay. Before, answers stayed in Redis for
// ever (trial 11). Real Redis, and the filestore.
func TestHousekeepingSweepsLeftovers(t *testing.T) {
	_, redis := redisStorage(t)
	for name, st := range map[string]storage.Storage{"redis": redis, "filestore": filestore.New(t.TempDir())} {
		t.Run(name, func(t *testing.T) {
			stale, _ := storage.ChallengeKey("http-01", "stale-token")
			live, _ := storage.ChallengeKey("http-01", "live-token")
			for key, expires := range map[string]time.Time{stale: time.Now().Add(-time.Minute), live: time.Now().Add(10 * time.Minute)} {
				data := []byte(`{"type":"http-01","token":"t","key_authorization":"t.k","expires":"` + expires.UTC().Format(time.RFC3339) + `"}`)
				if err := st.Store(t.Context(), key, data); err != nil {
					t.Fatal(err)
				}
			}
			oldOrder, _ := storage.PendingOrderKey("old.test", "")
			newOrder, _ := storage.PendingOrderKey("new.test", "")
			for key, created := range map[string]time.Time{oldOrder: time.Now().Add(-25 * time.Hour), newOrder: time.Now().Add(-time.Minute)} {
				data := []byte(`{"names":["x.test"],"order":{"issuer":"i","url":"https://ca.test/order/1","account":"https://ca.test/acct/1"},` +
					`"key_pem":"","created":"` + created.UTC().Format(time.RFC3339) + `"}`)
				if err := st.Store(t.Context(), key, data); err != nil {
					t.Fatal(err)
				}
			}
			m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
			defer m.Close()
			certkeeper.Housekeep(m, t.Context())
			if _, err := st.Load(t.Context(), stale); err == nil {
				t.Error("the expired challenge answer is still stored")
			}
			if _, err := st.Load(t.Context(), live); err != nil {
				t.Errorf("the challenge answer in progress was removed: %v", err)
			}
			if _, err := st.Load(t.Context(), oldOrder); err == nil {
				t.Error("the pending order of a day ago is still stored")
			}
			if _, err := st.Load(t.Context(), newOrder); err != nil {
				t.Errorf("the pending order of a minute ago was removed: %v", err)
			}
		})
	}
}

// TestOutageWarningPaced: with Redis down, every handshake for a name not
// in memory fails to read storage, a scanner's made-up names too; the
// warning is logged once per interval, not once per handshake (trial 11).
func TestOutageWarningPaced(t *testing.T) {
	rs, st := redisStorage(t)
	var logs testsvc.Buffer
	m := localManager(t, st, policy.Allowlist("a.test"))
	m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	certkeeper.WaitRenewalScan(m)
	rs.Stop()
	for i := range 20 {
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: fmt.Sprintf("scan%d.example", i)}); err == nil {
			t.Fatal("a made-up name got a certificate")
		}
	}
	if n := strings.Count(logs.String(), "loading stored certificate"); n != 1 {
		t.Errorf("the storage failure was logged %d times for 20 handshakes, want 1:\n%s", n, logs.String())
	}
	// Back: the first handshake that reads storage again says so, once.
	rs.Restart(t)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"}); err == nil {
			break
		}
	}
	m.GetCertificate(&tls.ClientHelloInfo{ServerName: "scan0.example"})
	if n := strings.Count(logs.String(), "storage answers again"); n != 1 {
		t.Errorf("storage back: %d lines saying so, want 1:\n%s", n, logs.String())
	}
}

// redisStorage starts a Redis for the test and opens a Store on it.
func redisStorage(t *testing.T) (*testsvc.RedisServer, *redisstore.Store) {
	t.Helper()
	rs := testsvc.Redis(t)
	st, err := redisstore.Open("redis://" + rs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return rs, st
}

// TestLimitsReadAfterOutage: when the stored rate-limit state cannot be
// read at the first new name (storage down), it is read at a later one,
// not given up for the life of the process (a node then did not know the
// stored back-offs, and its first save replaced the stored order
// budgets). Here a back-off stored while the node could not read it holds
// the name back once storage is back.
func TestLimitsReadAfterOutage(t *testing.T) {
	rs, st := redisStorage(t)
	m := localManager(t, st, policy.Allowlist("new.test", "blocked.test"))
	m.Logger = slog.New(slog.DiscardHandler)
	certkeeper.WaitRenewalScan(m)
	rs.Stop()
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "new.test"}); err == nil {
		t.Fatal("a new name got a certificate with the storage down")
	}
	rs.Restart(t) // empty
	now := time.Now().UTC()
	state := fmt.Sprintf(`{"failures":{"failures":{"blocked.test":["%s","%s","%s","%s","%s"]}}}`,
		now.Add(-5*time.Second).Format(time.RFC3339Nano), now.Add(-4*time.Second).Format(time.RFC3339Nano),
		now.Add(-3*time.Second).Format(time.RFC3339Nano), now.Add(-2*time.Second).Format(time.RFC3339Nano),
		now.Add(-time.Second).Format(time.RFC3339Nano))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil { // the client reconnects
		if err = st.Store(ctx, storage.StateKey("limits"), []byte(state)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "blocked.test"}); !errors.Is(err, certkeeper.ErrFailedRecently) {
		t.Errorf("a name the stored state backs off, after the outage: %v, want ErrFailedRecently", err)
	}
}
