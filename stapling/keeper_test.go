package stapling

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// responder answers OCSP requests for one CA with a status and validity
// the test sets. It stands in for a real responder only where the Keeper's
// timing is tested (a real one, openssl ocsp, cannot issue responses valid
// for seconds); the Manager's TestOCSPStapling uses openssl.
type responder struct {
	ca       testCA
	mu       sync.Mutex
	status   int
	validity time.Duration
	down     bool
	requests atomic.Int64
}

func (r *responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	body, _ := io.ReadAll(req.Body)
	q, err := ocsp.ParseRequest(body)
	r.mu.Lock()
	status, validity, down := r.status, r.validity, r.down
	r.mu.Unlock()
	if err != nil || down {
		http.Error(w, "no", http.StatusServiceUnavailable)
		return
	}
	now := time.Now()
	tmpl := ocsp.Response{Status: status, SerialNumber: q.SerialNumber, ThisUpdate: now.Add(-time.Second), NextUpdate: now.Add(validity)}
	if status == ocsp.Revoked {
		tmpl.RevokedAt = now.Add(-time.Minute)
	}
	der, err := ocsp.CreateResponse(r.ca.cert, r.ca.cert, tmpl, r.ca.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(der)
}

func (r *responder) set(status int, down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.down = status, down
}

// staples records what a Keeper set.
type staples struct {
	mu   sync.Mutex
	got  [][]byte
	keep atomic.Bool
}

func (s *staples) set(der []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 || !bytes.Equal(s.got[len(s.got)-1], der) {
		s.got = append(s.got, der)
	}
	return s.keep.Load()
}

func (s *staples) last() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return nil
	}
	return s.got[len(s.got)-1]
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within %v: %s", d, what)
		}
	}
}

// TestKeeper: a staple is set at once, refreshed at half its validity,
// dropped when the certificate turns out revoked; a set that returns
// false ends the keeping; Close ends the Keeper's goroutines.
func TestKeeper(t *testing.T) {
	before := runtime.NumGoroutine()
	ca := newTestCA(t, "ca")
	resp := &responder{ca: ca, status: ocsp.Good, validity: 4 * time.Second}
	srv := httptest.NewServer(resp)
	defer srv.Close()
	leaf := ca.issue(t, &x509.Certificate{DNSNames: []string{"a.test"}, OCSPServer: []string{srv.URL}})
	var logs bytes.Buffer
	var logMu sync.Mutex
	k := &Keeper{Logger: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))}
	var s staples
	s.keep.Store(true)
	var revokedCalls atomic.Int32
	k.KeepRevoked(leaf, ca.cert, s.set, func(se *StatusError) {
		if se.Status == ocsp.Revoked {
			revokedCalls.Add(1)
		}
	})
	waitUntil(t, 5*time.Second, "first staple", func() bool { return s.last() != nil })
	if _, err := Verify(s.last(), leaf, ca.cert, time.Now()); err != nil {
		t.Fatalf("staple set: %v", err)
	}
	// Valid for 5 s (from a second ago), refreshed after about 2 s.
	first := s.last()
	waitUntil(t, 15*time.Second, "refresh at half validity", func() bool { return !bytes.Equal(s.last(), first) && s.last() != nil })
	if n := resp.requests.Load(); n != 2 {
		t.Errorf("%d requests to the responder for one refresh, want 2", n)
	}

	// Revoked at the next refresh: the staple goes at once, and the
	// owner hears of it.
	if n := revokedCalls.Load(); n != 0 {
		t.Fatalf("revoked called %d times for a good certificate", n)
	}
	resp.set(ocsp.Revoked, false)
	waitUntil(t, 15*time.Second, "staple dropped after revocation", func() bool { return s.last() == nil })
	waitUntil(t, 5*time.Second, "revoked called", func() bool { return revokedCalls.Load() > 0 })
	logMu.Lock()
	if !strings.Contains(logs.String(), "revoked") {
		t.Errorf("revocation not logged:\n%s", logs.String())
	}
	logMu.Unlock()

	// The certificate is no longer served: keeping ends.
	s.keep.Store(false)
	resp.set(ocsp.Good, false)
	k.mu.Lock()
	kept := len(k.kept)
	k.mu.Unlock()
	if kept != 1 {
		t.Fatalf("%d certificates kept, want 1", kept)
	}
	k.sched.Schedule(Fingerprint(leaf), time.Now())
	waitUntil(t, 5*time.Second, "forgotten", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return len(k.kept) == 0
	})

	k.Close()
	srv.Close()
	waitUntil(t, 5*time.Second, "goroutines ended", func() bool { return runtime.NumGoroutine() <= before+1 })
}

// TestKeeperMustStaple: a must-staple certificate without a good staple
// is logged at Error on every attempt.
func TestKeeperMustStaple(t *testing.T) {
	ca := newTestCA(t, "ca")
	resp := &responder{ca: ca, status: ocsp.Good, validity: time.Hour, down: true}
	srv := httptest.NewServer(resp)
	defer srv.Close()
	feature, _ := asn1.Marshal([]int{5})
	leaf := ca.issue(t, &x509.Certificate{DNSNames: []string{"a.test"}, OCSPServer: []string{srv.URL},
		ExtraExtensions: []pkix.Extension{{Id: oidTLSFeature, Value: feature}}})
	var mu sync.Mutex
	var logs bytes.Buffer
	k := &Keeper{Logger: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))}
	defer k.Close()
	var s staples
	s.keep.Store(true)
	k.Keep(leaf, ca.cert, s.set)
	waitUntil(t, 5*time.Second, "must-staple error logged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "level=ERROR") && strings.Contains(logs.String(), "MUST-STAPLE")
	})
	resp.set(ocsp.Good, false)
	waitUntil(t, 15*time.Second, "staple after the responder recovers", func() bool { return s.last() != nil })
}

// TestKeeperNoOCSP: a certificate without a responder is ignored and
// starts nothing.
func TestKeeperNoOCSP(t *testing.T) {
	ca := newTestCA(t, "ca")
	leaf := ca.issue(t, &x509.Certificate{DNSNames: []string{"a.test"}})
	before := runtime.NumGoroutine()
	var k Keeper
	k.Keep(leaf, ca.cert, func([]byte) bool { t.Error("set called for a certificate without OCSP"); return false })
	if n := runtime.NumGoroutine(); n != before {
		t.Errorf("Keep of a certificate without OCSP started %d goroutines", n-before)
	}
	if k.sched != nil {
		t.Error("Keep of a certificate without OCSP started the scheduler")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
