package localca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
)

func newCA(st storage.Storage) *CA {
	return &CA{Storage: st, Logger: slog.New(slog.DiscardHandler)}
}

// request makes a key of type kt and a request for names.
func request(t *testing.T, kt issuer.KeyType, names ...string) (crypto.Signer, issuer.Request) {
	t.Helper()
	key, err := kt.Generate()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := issuer.NewCSR(key, names)
	if err != nil {
		t.Fatal(err)
	}
	return key, issuer.Request{Names: names, CSR: csr}
}

func parseChain(t *testing.T, chainPEM []byte) []*x509.Certificate {
	t.Helper()
	var chain []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	return chain
}

// verify checks that c chains to root for every name (a wildcard through
// one label under it) at the current time.
func verify(t *testing.T, root *x509.Certificate, c *issuer.Certificate, names []string) {
	t.Helper()
	chain := parseChain(t, c.ChainPEM)
	if len(chain) != 2 {
		t.Fatalf("chain has %d certificates, want 2 (leaf, intermediate)", len(chain))
	}
	if !bytes.Equal(chain[0].Raw, c.Leaf.Raw) {
		t.Errorf("Leaf is not the first certificate of ChainPEM")
	}
	if bytes.Equal(chain[1].Raw, root.Raw) {
		t.Errorf("ChainPEM includes the root")
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(chain[1])
	for _, n := range names {
		host := n
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			host = "x." + rest
		}
		opts := x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inters}
		if _, err := chain[0].Verify(opts); err != nil {
			t.Errorf("Verify(%q) = %v, want nil", host, err)
		}
	}
}

func TestIssue(t *testing.T) {
	ca := newCA(newMemStorage())
	root, err := ca.Root(t.Context())
	if err != nil {
		t.Fatalf("Root() = %v", err)
	}
	tests := []struct {
		name  string
		kt    issuer.KeyType
		names []string
	}{
		{"localhost", issuer.ECDSAP256, []string{"localhost"}},
		{"dns", issuer.ECDSAP256, []string{"a.test"}},
		{"ipv4", issuer.ECDSAP256, []string{"127.0.0.1"}},
		{"ipv6", issuer.ECDSAP384, []string{"::1"}},
		{"many", issuer.ECDSAP256, []string{"a.test", "*.a.test", "localhost", "127.0.0.1", "::1"}},
		{"rsa", issuer.RSA2048, []string{"a.test"}},
		{"duplicates", issuer.ECDSAP256, []string{"a.test", "a.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, req := request(t, tt.kt, tt.names...)
			before := time.Now()
			c, err := ca.Issue(t.Context(), req)
			after := time.Now()
			if err != nil {
				t.Fatalf("Issue(%q) = %v", tt.names, err)
			}
			verify(t, root, c, tt.names)
			if c.Issuer != "local" || ca.ID() != "local" {
				t.Errorf("Issuer = %q, ID() = %q, want local", c.Issuer, ca.ID())
			}
			keyPEM, err := storage.MarshalPrivateKeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tls.X509KeyPair(c.ChainPEM, keyPEM); err != nil {
				t.Errorf("tls.X509KeyPair(chain, key) = %v", err)
			}
			l := c.Leaf
			if !slices.Equal(l.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || l.IsCA {
				t.Errorf("leaf ExtKeyUsage = %v, IsCA = %v, want [serverAuth], false", l.ExtKeyUsage, l.IsCA)
			}
			if bits := l.SerialNumber.BitLen(); l.SerialNumber.Sign() <= 0 || bits > 128 {
				t.Errorf("serial %v has %d bits, want 1..128, positive", l.SerialNumber, bits)
			}
			// A minute back from the issue, which may fall in the second after
			// before: X.509 times are whole seconds.
			if lo, hi := before.Add(-time.Minute-2*time.Second), after.Add(-time.Minute); l.NotBefore.Before(lo) || l.NotBefore.After(hi) {
				t.Errorf("NotBefore = %v, want between %v and %v", l.NotBefore, lo, hi)
			}
			if want := before.Add(7 * 24 * time.Hour); l.NotAfter.Before(want.Add(-time.Second)) || l.NotAfter.After(want.Add(time.Minute)) {
				t.Errorf("NotAfter = %v, want about %v", l.NotAfter, want)
			}
		})
	}
}

func TestIssueLifetime(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		want     time.Duration
	}{
		{"zero", 0, 7 * 24 * time.Hour},
		{"negative", -time.Hour, 7 * 24 * time.Hour},
		{"one hour", time.Hour, time.Hour},
		{"clamped", 400 * 24 * time.Hour, 365 * 24 * time.Hour / 2},
	}
	st := newMemStorage()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newCA(st)
			ca.Lifetime = tt.lifetime
			_, req := request(t, issuer.ECDSAP256, "a.test")
			c, err := ca.Issue(t.Context(), req)
			if err != nil {
				t.Fatalf("Issue = %v", err)
			}
			if got := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore) - time.Minute; got < tt.want-2*time.Second || got > tt.want+time.Second {
				t.Errorf("Lifetime %v: leaf valid for %v, want %v", tt.lifetime, got, tt.want)
			}
		})
	}
}

func TestIssueOCSPURL(t *testing.T) {
	st := newMemStorage()
	for _, url := range []string{"", "http://127.0.0.1:8888/ocsp"} {
		ca := newCA(st)
		ca.OCSPURL = url
		_, req := request(t, issuer.ECDSAP256, "a.test")
		c, err := ca.Issue(t.Context(), req)
		if err != nil {
			t.Fatalf("Issue = %v", err)
		}
		want := []string{url}
		if url == "" {
			want = nil
		}
		if !slices.Equal(c.Leaf.OCSPServer, want) {
			t.Errorf("OCSPURL %q: leaf's OCSPServer = %q, want %q", url, c.Leaf.OCSPServer, want)
		}
	}
}

func TestIssueRejects(t *testing.T) {
	ca := newCA(newMemStorage())
	_, good := request(t, issuer.ECDSAP256, "a.test")
	badSig := slices.Clone(good.CSR)
	badSig[len(badSig)-3] ^= 0xff
	_, two := request(t, issuer.ECDSAP256, "a.test", "b.test")
	_, upper := request(t, issuer.ECDSAP256, "A.TEST")
	_, rsa1024 := func() (crypto.Signer, issuer.Request) {
		// Not a KeyType certkeeper generates; build the CSR by hand.
		return nil, issuer.Request{Names: []string{"a.test"}, CSR: weakRSACSR(t)}
	}()
	tests := []struct {
		name string
		req  issuer.Request
		want string
	}{
		{"no names", issuer.Request{CSR: good.CSR}, "no names"},
		{"garbage CSR", issuer.Request{Names: []string{"a.test"}, CSR: []byte("junk")}, "parsing CSR"},
		{"bad signature", issuer.Request{Names: []string{"a.test"}, CSR: badSig}, "signature"},
		{"other name", issuer.Request{Names: []string{"b.test"}, CSR: good.CSR}, "differ"},
		{"missing name", issuer.Request{Names: []string{"a.test"}, CSR: two.CSR}, "differ"},
		{"extra name", issuer.Request{Names: []string{"a.test", "c.test"}, CSR: good.CSR}, "differ"},
		{"not normalised", upper, "not normalised"},
		{"invalid name", issuer.Request{Names: []string{"a..test"}, CSR: good.CSR}, "empty label"},
		{"weak key", rsa1024, "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ca.Issue(t.Context(), tt.req)
			var ie *issuer.Error
			if !errors.As(err, &ie) || ie.Issuer != "local" || !slices.Equal(ie.Names, tt.req.Names) {
				t.Fatalf("Issue(%q) = %v, %v, want an *issuer.Error from local", tt.req.Names, c, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Issue(%q) = %v, want an error containing %q", tt.req.Names, err, tt.want)
			}
		})
	}
}

func TestRootShared(t *testing.T) {
	st := newMemStorage()
	r1, err := newCA(st).Root(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ca2 := newCA(st)
	r2, err := ca2.Root(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !r1.Equal(r2) {
		t.Errorf("Root() on a second CA = %q, want %q", r2.Subject, r1.Subject)
	}
	if !strings.HasPrefix(r1.Subject.CommonName, "certkeeper local root ") || !r1.IsCA {
		t.Errorf("root subject = %q, IsCA = %v, want \"certkeeper local root <id>\", true", r1.Subject.CommonName, r1.IsCA)
	}
	if d := r1.NotAfter.Sub(r1.NotBefore); d < 3650*24*time.Hour {
		t.Errorf("root valid for %v, want 10 years", d)
	}
	p, err := ca2.RootPEM(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if chain := parseChain(t, p); len(chain) != 1 || !chain[0].Equal(r1) {
		t.Errorf("RootPEM() does not hold the root")
	}
	if n := st.storeCount(storage.LocalCAKey("root")); n != 1 {
		t.Errorf("root stored %d times, want 1", n)
	}
	// The value is readable JSON with PEM inside.
	data, err := st.Load(t.Context(), storage.LocalCAKey("root"))
	if err != nil {
		t.Fatal(err)
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil || !strings.HasPrefix(r.CertificatePEM, "-----BEGIN CERTIFICATE") ||
		!strings.HasPrefix(r.KeyPEM, "-----BEGIN PRIVATE KEY") {
		t.Errorf("stored root = %.80q, %v, want JSON with PEM certificate and key", data, err)
	}
}

func TestConcurrentFirstUse(t *testing.T) {
	st := newMemStorage()
	const n = 8
	roots := make([]*x509.Certificate, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			roots[i], errs[i] = newCA(st).Root(t.Context())
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Root() #%d = %v", i, errs[i])
		}
		if !roots[i].Equal(roots[0]) {
			t.Errorf("Root() #%d = %q, want %q", i, roots[i].Subject, roots[0].Subject)
		}
	}
	for _, which := range []string{"root", "intermediate"} {
		if got := st.storeCount(storage.LocalCAKey(which)); got != 1 {
			t.Errorf("%s stored %d times, want 1", which, got)
		}
	}
}

// TestIntermediateRenewal runs in a synctest bubble, whose clock jumps
// when every goroutine sleeps.
func TestIntermediateRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemStorage()
		ca := newCA(st)
		root, err := ca.Root(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_, req := request(t, issuer.ECDSAP256, "a.test")
		first, err := ca.Issue(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		inter1 := parseChain(t, first.ChainPEM)[1]

		time.Sleep(200 * 24 * time.Hour) // two thirds of a year left: kept
		c, err := ca.Issue(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got := parseChain(t, c.ChainPEM)[1]; !got.Equal(inter1) {
			t.Errorf("after 200 days: intermediate %q, want the first, %q", got.Subject, inter1.Subject)
		}

		time.Sleep(50 * 24 * time.Hour) // less than a third left: renewed
		c, err = ca.Issue(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		inter2 := parseChain(t, c.ChainPEM)[1]
		if inter2.Equal(inter1) {
			t.Errorf("after 250 days: intermediate not renewed (%q)", inter2.Subject)
		}
		verify(t, root, c, req.Names)
		if got := st.storeCount(storage.LocalCAKey("intermediate")); got != 2 {
			t.Errorf("intermediate stored %d times, want 2", got)
		}
		// Another CA on the same storage picks up the renewed one.
		c, err = newCA(st).Issue(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got := parseChain(t, c.ChainPEM)[1]; !got.Equal(inter2) {
			t.Errorf("second CA uses intermediate %q, want %q", got.Subject, inter2.Subject)
		}
	})
}

// TestRootExpiry checks that leaves and intermediates are clamped to the
// root near its end, and that an expired root stops issuance.
func TestRootExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemStorage()
		ca := newCA(st)
		ca.Lifetime = 90 * 24 * time.Hour
		root, err := ca.Root(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(root.NotAfter) - 30*24*time.Hour)
		_, req := request(t, issuer.ECDSAP256, "a.test")
		c, err := ca.Issue(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		verify(t, root, c, req.Names)
		if !c.Leaf.NotAfter.Equal(root.NotAfter) {
			t.Errorf("leaf NotAfter = %v, want the root's %v", c.Leaf.NotAfter, root.NotAfter)
		}
		stores := st.storeCount(storage.LocalCAKey("intermediate"))
		if _, err := ca.Issue(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		if got := st.storeCount(storage.LocalCAKey("intermediate")); got != stores {
			t.Errorf("intermediate stored again (%d times, was %d): renewal cannot outlive the root", got, stores)
		}

		time.Sleep(31 * 24 * time.Hour)
		_, err = ca.Issue(t.Context(), req)
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("Issue after the root expired = %v, want an error saying it expired", err)
		}
	})
}

func TestDamagedValues(t *testing.T) {
	tests := []struct {
		name    string
		which   string
		wantErr bool // else: replaced
	}{
		{"root", "root", true},
		{"intermediate", "intermediate", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newMemStorage()
			if _, err := newCA(st).Root(t.Context()); err != nil {
				t.Fatal(err)
			}
			key := storage.LocalCAKey(tt.which)
			junk := []byte(`{"certificate_pem": "junk"}`)
			if err := st.Store(t.Context(), key, junk); err != nil {
				t.Fatal(err)
			}
			_, err := newCA(st).Root(t.Context())
			data, _ := st.Load(t.Context(), key)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), key) {
					t.Errorf("Root() with damaged %s = %v, want an error naming %s", tt.which, err, key)
				}
				if !bytes.Equal(data, junk) {
					t.Errorf("damaged %s was overwritten", tt.which)
				}
				return
			}
			if err != nil {
				t.Errorf("Root() with damaged %s = %v, want nil", tt.which, err)
			}
			if bytes.Equal(data, junk) {
				t.Errorf("damaged %s was not replaced", tt.which)
			}
		})
	}
}

func TestStorageErrors(t *testing.T) {
	t.Run("no storage", func(t *testing.T) {
		_, req := request(t, issuer.ECDSAP256, "a.test")
		_, err := (&CA{}).Issue(t.Context(), req)
		if err == nil || !strings.Contains(err.Error(), "no Storage") {
			t.Errorf("Issue without Storage = %v, want an error saying so", err)
		}
	})
	t.Run("load fails", func(t *testing.T) {
		boom := errors.New("boom")
		st := failingStorage{memStorage: newMemStorage(), err: boom}
		_, err := newCA(st).Root(t.Context())
		if !errors.Is(err, boom) || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Root() on failing storage = %v, want it to wrap %v", err, boom)
		}
	})
}

// failingStorage fails every Load with err.
type failingStorage struct {
	*memStorage
	err error
}

func (s failingStorage) Load(_ context.Context, key string) ([]byte, error) {
	return nil, fmt.Errorf("loading %s: %w", key, s.err)
}

// weakRSACSR is a CSR for "a.test" with a 1024-bit RSA key.
func weakRSACSR(t *testing.T) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"a.test"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// TestStoredRoot: StoredRoot reads the root without creating a CA: none
// yet is fs.ErrNotExist (and still none after), then the root Root made.
func TestStoredRoot(t *testing.T) {
	st := newMemStorage()
	ca := &CA{Storage: st}
	if _, err := ca.StoredRoot(t.Context()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("StoredRoot before any use = %v, want fs.ErrNotExist", err)
	}
	if keys, _ := st.List(t.Context(), ""); len(keys) != 0 {
		t.Fatalf("StoredRoot created %v", keys)
	}
	root, err := ca.Root(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&CA{Storage: st}).StoredRoot(t.Context())
	if err != nil || !got.Equal(root) {
		t.Errorf("StoredRoot after Root = %v, %v; want the root", got, err)
	}
}
