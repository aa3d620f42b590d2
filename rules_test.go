package certkeeper_test

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

var (
	rsaOnlyHello = &tls.ClientHelloInfo{
		ServerName:        "r.test",
		SignatureSchemes:  []tls.SignatureScheme{tls.PKCS1WithSHA256},
		SupportedVersions: []uint16{tls.VersionTLS12},
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
		CipherSuites:      []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
	}
	modernHello = &tls.ClientHelloInfo{
		ServerName:        "r.test",
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256},
		CipherSuites:      []uint16{tls.TLS_AES_128_GCM_SHA256},
	}
)

func TestRSAFallback(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := localManager(t, st, policy.Allowlist("r.test", "o.test"))
	m.RSAFallback = true
	for _, tt := range []struct {
		name  string
		hello *tls.ClientHelloInfo
		rsa   bool
	}{{"modern", modernHello, false}, {"rsa-only", rsaOnlyHello, true}} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := m.GetCertificate(tt.hello)
			if err != nil {
				t.Fatal(err)
			}
			_, isRSA := c.Leaf.PublicKey.(*rsa.PublicKey)
			_, isEC := c.Leaf.PublicKey.(*ecdsa.PublicKey)
			if isRSA != tt.rsa || isEC == tt.rsa {
				t.Errorf("served a %T key, want RSA: %v", c.Leaf.PublicKey, tt.rsa)
			}
		})
	}
	// Cert makes both for a managed name.
	if err := m.Cert(t.Context(), "o.test"); err != nil {
		t.Fatal(err)
	}
	h := *rsaOnlyHello
	h.ServerName = "o.test"
	if c, err := m.GetCertificate(&h); err != nil || issuer.KeyTypeOf(c.Leaf.PublicKey) != issuer.RSA2048 {
		t.Errorf("RSA certificate for a Cert name: %v", err)
	}
	// Off by default: an RSA-only client gets the ECDSA certificate (and
	// fails its handshake, as with autocert's default).
	m2 := localManager(t, filestore.New(t.TempDir()), policy.Allowlist("r.test"))
	if c, err := m2.GetCertificate(rsaOnlyHello); err != nil || issuer.KeyTypeOf(c.Leaf.PublicKey) != issuer.ECDSAP256 {
		t.Errorf("without RSAFallback: %v, %v", err, c)
	}
}

// TestRules: names matching a rule use its issuer and key type.
func TestRules(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{
		Policy:  policy.Allowlist("*.int.test", "pub.test"),
		Storage: st,
		// The default chain is a CA that does not exist: only the rule can issue.
		Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: "https://127.0.0.1:1/dir"}},
		Rules: []certkeeper.NameRule{{
			Pattern: "*.int.test",
			Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
			KeyType: issuer.ECDSAP384,
		}},
	}
	defer m.Close()
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.int.test"})
	if err != nil {
		t.Fatalf("a name under a rule: %v", err)
	}
	if kt := issuer.KeyTypeOf(c.Leaf.PublicKey); kt != issuer.ECDSAP384 {
		t.Errorf("key type = %s, want the rule's ecdsa-p384", kt)
	}
	bad := &certkeeper.Manager{Storage: st, Rules: []certkeeper.NameRule{{Pattern: "a..b"}}}
	if err := bad.Serve(); err == nil {
		t.Error("a Manager with an invalid rule pattern started")
	}
}

func TestGetCertificateCachedAllocsRSAFallback(t *testing.T) {
	m := localManager(t, filestore.New(t.TempDir()), nil)
	m.RSAFallback = true
	if err := m.Cert(t.Context(), "r.test"); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(1000, func() {
		if _, err := m.GetCertificate(modernHello); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("GetCertificate with RSAFallback allocates %v times, want 0", allocs)
	}
}

// TestAgreeTerms: the Manager's terms prompt is asked with the CA's terms
// URL before an account is registered, and refusing stops issuance.
func TestAgreeTerms(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	var asked string
	m := newACMEManager(ca, filestore.New(t.TempDir()), policy.Allowlist("t.test"))
	m.AgreeTerms = func(tos string) bool { asked = tos; return false }
	s := serve(t, m, ca)
	if _, err := s.handshake(t, "t.test", nil); err == nil {
		t.Error("issued although the terms were refused")
	}
	if asked == "" {
		t.Error("AgreeTerms was not asked, or with no terms URL")
	}
	if n := ca.Accounts(); n != 0 {
		t.Errorf("%d accounts registered after refusing the terms, want 0", n)
	}
}

// TestRSAFallbackRSAKeyType: with RSAFallback, a name whose own key type
// is RSA (a rule's, or the Manager's) gets one certificate, served to
// every client, not a second RSA one beside it (an order spent for
// nothing); other names still get both.
func TestRSAFallbackRSAKeyType(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := localManager(t, st, policy.Allowlist("r.test", "e.test"))
	m.RSAFallback = true
	m.Rules = []certkeeper.NameRule{{Pattern: "r.test", KeyType: issuer.RSA2048}}
	var obtained []string
	m.OnEvent = func(e certkeeper.Event) {
		if e.Kind == certkeeper.Obtained {
			obtained = append(obtained, e.Names[0])
		}
	}
	for _, hello := range []*tls.ClientHelloInfo{rsaOnlyHello, modernHello} {
		c, err := m.GetCertificate(hello)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.PrivateKey.(*rsa.PrivateKey); !ok {
			t.Errorf("r.test (rule: RSA) served a %T key", c.PrivateKey)
		}
	}
	if err := m.Cert(t.Context(), "r.test"); err != nil {
		t.Fatal(err)
	}
	if len(obtained) != 1 {
		t.Errorf("r.test obtained %d times (%v), want once: its RSA certificate serves both clients", len(obtained), obtained)
	}
	obtained = nil
	if err := m.Cert(t.Context(), "e.test"); err != nil {
		t.Fatal(err)
	}
	if len(obtained) != 2 {
		t.Errorf("e.test (ECDSA) obtained %d times, want 2 (ECDSA and the RSA fallback)", len(obtained))
	}
}

// TestSelfSignedFallbackRSAClient: with SelfSignedFallback, a refused
// name gets a self-signed stand-in a client can use: ECDSA for a modern
// one, RSA for one that cannot use ECDSA (it got an ECDSA one, and the
// handshake failed with no common cipher suite: trial 25). The RSA
// stand-ins share one key, so a scan of refused names from such a client
// does not make an RSA key per name.
func TestSelfSignedFallbackRSAClient(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := localManager(t, st, policy.Allowlist("allowed.test"))
	m.SelfSignedFallback = true
	hello := func(h *tls.ClientHelloInfo, name string) *tls.ClientHelloInfo {
		c := *h
		c.ServerName = name
		return &c
	}
	modern, err := m.GetCertificate(hello(modernHello, "refused.test"))
	if err != nil || issuer.KeyTypeOf(modern.Leaf.PublicKey) != issuer.ECDSAP256 {
		t.Fatalf("modern client, refused name: %v; want an ECDSA stand-in", err)
	}
	var keys []any
	for _, name := range []string{"refused.test", "other.test"} {
		c, err := m.GetCertificate(hello(rsaOnlyHello, name))
		if err != nil {
			t.Fatalf("RSA-only client, %s: %v", name, err)
		}
		if _, ok := c.PrivateKey.(*rsa.PrivateKey); !ok || c.Leaf.Subject.CommonName != name && !slices.Contains(c.Leaf.DNSNames, name) {
			t.Errorf("RSA-only client, %s: a %T key for %v; want an RSA stand-in for the name", name, c.PrivateKey, c.Leaf.DNSNames)
		}
		keys = append(keys, c.PrivateKey)
	}
	if !keys[0].(*rsa.PrivateKey).Equal(keys[1]) {
		t.Error("the RSA stand-ins have a key each, want one shared")
	}
}

// TestLocalCAWired: a zero local CA in a Manager's Issuers uses the
// Manager's storage, and logs the root it creates in the Manager's log,
// not slog.Default's (a trial's program saw it there).
func TestLocalCAWired(t *testing.T) {
	logs := &testsvc.Buffer{}
	m := &certkeeper.Manager{Storage: filestore.New(t.TempDir()), Issuers: []issuer.Issuer{&localca.CA{}},
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	defer m.Close()
	if err := m.Cert(t.Context(), "a.test"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "local CA root created") {
		t.Errorf("the Manager's log lacks the local CA's root:\n%s", logs)
	}
}
