package certkeeper_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/bench/scale/fill"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestStatsAtStart: Stats on a Manager that has just started (a /metrics
// scrape at start-up) while its storage scan creates the renewal state.
// Under -race, this caught the scan writing that state without the lock
// Stats reads it under.
func TestStatsAtStart(t *testing.T) {
	for range 20 {
		m := &certkeeper.Manager{Storage: filestore.New(t.TempDir())}
		for range 50 { // scrapes while the scan starts
			if s := m.Stats(); len(s.Certificates) != 0 {
				t.Errorf("a new Manager reports %d certificates", len(s.Certificates))
			}
		}
		m.Close()
	}
}

// TestStatsFailuresAfterRestart: the failures stored by an earlier run
// (what certkeeper status shows failing) are in Stats, and so in the
// failing gauge, from the start, not from the next failure on (trial 13).
func TestStatsFailuresAfterRestart(t *testing.T) {
	st := filestore.New(t.TempDir())
	if _, err := status.UpdateFailures(t.Context(), st, func(all map[string]status.Failure) bool {
		all["certificates/ca/f.test.json"] = status.Failure{Names: []string{"f.test"}, Error: "the CA refused it", At: time.Now()}
		return true
	}, nil); err != nil {
		t.Fatal(err)
	}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	defer m.Close()
	certkeeper.WaitRenewalScan(m)
	if f, ok := m.Stats().Failures["certificates/ca/f.test.json"]; !ok || f.Error != "the CA refused it" {
		t.Errorf("Stats().Failures = %v after a restart, want the stored failure", m.Stats().Failures)
	}
}

// TestStatsHeldWithinCache: the certificates Stats lists as in memory are
// those in the cache, also when many are published at once. A
// certificate evicted by another's arrival between its own arrival and
// its renewal being scheduled was kept listed, and in memory, for good
// (trial 22: 10,009 listed with 10,000 cached after 10^5 names). Every
// certificate is listed, in memory or not.
func TestStatsHeldWithinCache(t *testing.T) {
	st := filestore.New(fastDir(t))
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Policy: policy.Allowlist("*.held.test"), CacheSize: 8}
	defer m.Close()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < 2000; i += 8 {
				if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: fmt.Sprintf("n%d.held.test", i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := m.Stats()
	if inMemory := inMemory(s); inMemory != s.Cached || len(s.Certificates) != 2000 {
		t.Errorf("Stats lists %d certificates, %d in memory, with %d cached; want 2000, %[3]d", len(s.Certificates), inMemory, s.Cached)
	}
}

// inMemory counts the certificates s lists as in memory.
func inMemory(s certkeeper.Stats) int {
	n := 0
	for _, c := range s.Certificates {
		if c.InMemory {
			n++
		}
	}
	return n
}

// TestStatsCountsStored: Stats lists every certificate the Manager renews,
// not only those in memory: those the start-up scan read and those that
// left the cache, each with its primary name (a wildcard's too), issuer,
// dates and on-demand mark. (The scale trial: with 100,000 stored and the
// default cache, the metrics counted 10,000 certificates, and an expiring
// one no handshake had loaded was in none of them.)
func TestStatsCountsStored(t *testing.T) {
	st := filestore.New(t.TempDir())
	ca, err := fill.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	type dates struct {
		notBefore, notAfter time.Time
		onDemand            bool
	}
	want := map[string]dates{}
	for i, group := range []struct {
		n int
		d dates
	}{{10, dates{now.Add(-time.Hour), now.Add(90 * 24 * time.Hour), false}}, {5, dates{now.Add(-2 * time.Hour), now.Add(60 * 24 * time.Hour), true}}} {
		var names []string
		for j := range group.n {
			names = append(names, fmt.Sprintf("g%d-%d.stats.test", i, j))
		}
		if i == 0 {
			names = append(names, "*.w.stats.test")
		}
		for _, n := range names {
			want[n] = group.d
		}
		spec := fill.Spec{IssuerID: (&localca.CA{}).ID(), Names: names, NotBefore: group.d.notBefore, NotAfter: group.d.notAfter, OnDemand: group.d.onDemand}
		if err := ca.Fill(t.Context(), st, spec); err != nil {
			t.Fatal(err)
		}
	}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, CacheSize: 2}
	defer m.Close()
	certkeeper.WaitRenewalScan(m)
	check := func(when string, wantInMemory int) {
		t.Helper()
		s := m.Stats()
		for _, c := range s.Certificates {
			w, ok := want[c.Names[0]]
			if !ok || !c.NotBefore.Equal(w.notBefore) || !c.NotAfter.Equal(w.notAfter) || c.OnDemand != w.onDemand || c.Issuer != "local" || c.RenewAt.IsZero() {
				t.Errorf("%s: Stats lists %s (key %s, in memory %v) with issuer %q, dates %v to %v, on demand %v, renew at %v; want %v",
					when, c.Names, c.Key, c.InMemory, c.Issuer, c.NotBefore, c.NotAfter, c.OnDemand, c.RenewAt, w)
			}
		}
		if n := inMemory(s); len(s.Certificates) != len(want) || n != wantInMemory {
			t.Errorf("%s: Stats lists %d certificates, %d in memory; want %d, %d", when, len(s.Certificates), n, len(want), wantInMemory)
		}
	}
	check("after the start-up scan", 0)
	for i := range 5 {
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: fmt.Sprintf("g0-%d.stats.test", i)}); err != nil {
			t.Fatal(err)
		}
	}
	check("after five handshakes with a cache of two", 2)
}

// TestStatsRenewAt: each certificate Stats lists says when the scheduler
// looks at it next, before its expiry (trial 25).
func TestStatsRenewAt(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	defer m.Close()
	if err := m.Cert(t.Context(), "r.test"); err != nil {
		t.Fatal(err)
	}
	s := m.Stats()
	if len(s.Certificates) != 1 {
		t.Fatalf("Stats lists %d certificates, want 1", len(s.Certificates))
	}
	c := s.Certificates[0]
	if c.RenewAt.IsZero() || !c.RenewAt.Before(c.NotAfter) || c.RenewAt.Before(time.Now()) {
		t.Errorf("RenewAt = %v (not_after %v), want a time ahead, before the expiry", c.RenewAt, c.NotAfter)
	}
}

// TestStatsEvents: Stats counts the events a Manager emits, by kind, with
// no OnEvent or Watch to count them (trial 25: a library user found no
// count of denied handshakes or of certificates obtained).
func TestStatsEvents(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := localManager(t, st, policy.Allowlist("ok.test"))
	for _, name := range []string{"ok.test", "ok.test", "no1.test", "no2.test"} {
		m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	}
	got := m.Stats().Events
	if got[certkeeper.Obtained] != 1 || got[certkeeper.Denied] != 2 {
		t.Errorf("Stats().Events = %v, want 1 obtained and 2 denied", got)
	}
	if _, ok := got[certkeeper.Renewed]; ok {
		t.Errorf("Stats().Events lists renewed, which never happened: %v", got)
	}
}

// TestStatsDamagedAndGone: a stored record the Manager finds damaged (at
// its start-up scan, or at a renewal check) is counted as damaged, not as
// renewed; once deleted from storage by another process it stops
// counting, as does a certificate not in memory whose record is deleted,
// at the next housekeeping round. (A trial: a damaged record went on
// counting as renewed, with its old dates, and once deleted it was an
// expired certificate in the metrics until a restart.)
func TestStatsDamagedAndGone(t *testing.T) {
	st := filestore.New(t.TempDir())
	ctx := t.Context()
	undecodable, _ := storage.CertificateKey("local", "undecodable.test")
	if err := st.Store(ctx, undecodable, []byte(`{"names": ["undecod`)); err != nil {
		t.Fatal(err)
	}
	// Its fields decode, its chain does not parse; expired an hour ago,
	// so renewed (checked) at once.
	badChain := storeDated(t, st, "badchain.test", time.Now().Add(-90*time.Hour), time.Now().Add(-time.Hour))
	data, _ := st.Load(ctx, badChain)
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	rec["chain_pem"] = []byte("not a PEM chain")
	data, _ = json.Marshal(rec)
	if err := st.Store(ctx, badChain, data); err != nil {
		t.Fatal(err)
	}
	good := storeDated(t, st, "good.test", time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	m := localManager(t, st, nil)
	certkeeper.WaitRenewalScan(m)
	var s certkeeper.Stats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s = m.Stats(); s.Damaged == 2 {
			break
		}
	}
	if s.Damaged != 2 || len(s.Certificates) != 1 || s.Certificates[0].Key != good {
		t.Fatalf("Stats: %d damaged, certificates %+v; want 2 damaged, and %s alone renewed", s.Damaged, s.Certificates, good)
	}
	// Stored as its renewal failing, for the alerts (which read fields
	// alone, and check a record whole before they alert).
	var failures map[string]status.Failure
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, failures, _ = status.LoadState(ctx, st); failures[badChain].Error != "" {
			break
		}
	}
	if f := failures[badChain]; !strings.Contains(f.Error, "stored certificate is damaged") || !slices.Equal(f.Names, []string{"badchain.test"}) {
		t.Errorf("failure stored for %s: %+v; want its damage, naming badchain.test", badChain, f)
	}
	for _, key := range []string{undecodable, badChain, good} {
		if err := st.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	certkeeper.Housekeep(m, ctx)
	if s = m.Stats(); s.Damaged != 0 || len(s.Certificates) != 0 {
		t.Errorf("Stats after the records were deleted and a housekeeping round: %d damaged, certificates %+v; want none", s.Damaged, s.Certificates)
	}
}
