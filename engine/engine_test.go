package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestManager: the chain, the rules and the challenge order each issuer
// gets, with the Manager's own solvers beside the DNS ones.
func TestManager(t *testing.T) {
	st := filestore.New(t.TempDir())
	s := &Settings{
		CAs:       []string{"staging", "local"},
		Account:   Account{Email: "me@a.example", Profile: "shortlived"},
		TLSALPN01: true, HTTP01: true,
		DNS01:     &dns01.Solver{},
		Rules:     []Rule{{Pattern: "*.b.example", CAs: []string{"https://ca.b.example/dir"}, Challenges: []string{"http-01"}, Profile: "tlsserver"}},
		UserAgent: "proxy",
	}
	m, err := s.Manager(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Issuers) != 2 || m.Email != "me@a.example" || m.Storage != st {
		t.Fatalf("Manager = %d issuers, email %q", len(m.Issuers), m.Email)
	}
	a, ok := m.Issuers[0].(*acmeca.Issuer)
	if !ok || a.DirectoryURL != acmeca.LetsEncryptStaging || a.Profile != "shortlived" || a.UserAgent != "proxy" {
		t.Fatalf("first issuer = %#v, want the staging ACME issuer", m.Issuers[0])
	}
	if got, want := strings.Join(a.ChallengeOrder, " "), "dns-persist-01 tls-alpn-01 http-01 dns-01"; got != want {
		t.Errorf("challenge order %q, want %q", got, want)
	}
	for _, typ := range []string{"dns-persist-01", "dns-01", "tls-alpn-01", "http-01"} {
		if a.Solvers[typ] == nil {
			t.Errorf("no %s solver", typ)
		}
	}
	if _, ok := m.Issuers[1].(*localca.CA); !ok {
		t.Errorf("second issuer = %T, want the local CA", m.Issuers[1])
	}
	if len(m.Rules) != 1 {
		t.Fatalf("%d rules, want 1", len(m.Rules))
	}
	r, ok := m.Rules[0].Issuers[0].(*acmeca.Issuer)
	if !ok || r.DirectoryURL != "https://ca.b.example/dir" || r.Profile != "tlsserver" || strings.Join(r.ChallengeOrder, " ") != "http-01" || r.Solvers != nil {
		t.Errorf("rule issuer = %#v", m.Rules[0].Issuers[0])
	}
}

func TestManagerErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		s     Settings
		err   error
		field string
		rule  int
	}{
		{"tls-alpn-01 not answered", Settings{Challenges: []string{"tls-alpn-01"}, HTTP01: true}, ErrNotAnswered, "Challenges", -1},
		{"dns-01 without a solver", Settings{Challenges: []string{"dns-01"}}, ErrNotAnswered, "Challenges", -1},
		{"unknown challenge", Settings{Challenges: []string{"http-1"}, HTTP01: true}, ErrUnknownChallenge, "Challenges", -1},
		{"wildcard without dns-01", Settings{HTTP01: true, Wildcards: []string{"*.a.example"}}, ErrWildcardNeedsDNS01, "Wildcards", -1},
		{"not a wildcard", Settings{DNS01: &dns01.Solver{}, Wildcards: []string{"a.example"}}, ErrNotWildcard, "Wildcards", -1},
		{"not a wildcard, no dns-01 either", Settings{HTTP01: true, Wildcards: []string{"a.example"}}, ErrNotWildcard, "Wildcards", -1},
		{"rule challenge", Settings{HTTP01: true, Rules: []Rule{{Pattern: "a.example", Challenges: []string{"tls-alpn-01"}}}}, ErrNotAnswered, "Challenges", 0},
		{"rule pattern", Settings{HTTP01: true, Rules: []Rule{{Pattern: ""}}}, nil, "Pattern", 0},
		{"unknown CA", Settings{HTTP01: true, CAs: []string{"lets-encrypt"}}, nil, "CAs", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.s.Manager(filestore.New(t.TempDir()))
			se, ok := errors.AsType[*SettingError](err)
			if !ok || se.Field != tt.field || se.Rule != tt.rule || tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("Manager() = %v, want a SettingError on %s (rule %d) wrapping %v", err, tt.field, tt.rule, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "--") {
				t.Errorf("error %q names a flag", err)
			}
		})
	}
}

func TestCheckCA(t *testing.T) {
	for _, tt := range []struct{ ca, want string }{
		{"letsencrypt", ""},
		{"LOCAL", ""},
		{"https://ca.a.example/dir", ""},
		{"lets-encrypt", `"lets-encrypt" is not a CA: give an ACME directory URL (https://...), letsencrypt, staging or local; did you mean letsencrypt?`},
		{"127.0.0.1:14000/dir", `"127.0.0.1:14000/dir" is not a CA: give an ACME directory URL (https://...), letsencrypt, staging or local; did you mean https://127.0.0.1:14000/dir?`},
		{"ftp://ca.a.example", `"ftp://ca.a.example" is not a CA: give an ACME directory URL (https://...), letsencrypt, staging or local`},
	} {
		err := CheckCA(tt.ca)
		if got := ""; err != nil {
			got = err.Error()
			if got != tt.want {
				t.Errorf("CheckCA(%q) = %q, want %q", tt.ca, got, tt.want)
			}
		} else if tt.want != "" {
			t.Errorf("CheckCA(%q) = nil, want %q", tt.ca, tt.want)
		}
	}
	for name, want := range map[string]string{"": acmeca.LetsEncrypt, "Production": acmeca.LetsEncrypt, "staging": acmeca.LetsEncryptStaging, "https://x/d": "https://x/d"} {
		if got := CAURL(name); got != want {
			t.Errorf("CAURL(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestCAHTTPClient(t *testing.T) {
	if _, err := CAHTTPClient([]byte("not PEM")); !errors.Is(err, ErrNoRoots) {
		t.Errorf("CAHTTPClient(not PEM) = %v, want ErrNoRoots", err)
	}
	if _, err := CAHTTPClient([]byte{}); !errors.Is(err, ErrNoRoots) {
		t.Errorf("CAHTTPClient(empty) = %v, want ErrNoRoots", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, NotBefore: time.Now(),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := CAHTTPClient(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil || hc.Timeout != 60*time.Second {
		t.Errorf("CAHTTPClient(root) = %v, %v", hc, err)
	}
}

func TestParseOrderLimit(t *testing.T) {
	for _, tt := range []struct {
		in     string
		n      int
		window time.Duration
		ok     bool
	}{
		{"", 0, 0, true},
		{"10/1m", 10, time.Minute, true},
		{"300/3h", 300, 3 * time.Hour, true},
		{"10", 0, 0, false},
		{"0/1m", 0, 0, false},
		{"10/soon", 0, 0, false},
		{"10/-1m", 0, 0, false},
	} {
		n, w, err := ParseOrderLimit(tt.in)
		if (err == nil) != tt.ok || n != tt.n || w != tt.window {
			t.Errorf("ParseOrderLimit(%q) = %d, %s, %v; want %d, %s, ok %v", tt.in, n, w, err, tt.n, tt.window, tt.ok)
		}
	}
}

func TestCheckChallenge(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"dns-persist-01", ""},
		{"http-1", `"http-1": use tls-alpn-01, http-01, dns-01 or dns-persist-01; did you mean http-01?`},
		{"carrier-pigeon", `"carrier-pigeon": use tls-alpn-01, http-01, dns-01 or dns-persist-01`},
	} {
		err := CheckChallenge(tt.in)
		if got := ""; err != nil {
			got = err.Error()
			if got != tt.want {
				t.Errorf("CheckChallenge(%q) = %q, want %q", tt.in, got, tt.want)
			}
		} else if tt.want != "" {
			t.Errorf("CheckChallenge(%q) = nil, want %q", tt.in, tt.want)
		}
	}
}

// TestUsesDNS01: a DNS provider means dns-01 when no challenge is named,
// for Settings and a OneShot alike; named challenges decide otherwise.
func TestUsesDNS01(t *testing.T) {
	tests := []struct {
		name       string
		challenges []string
		provider   bool
		want       bool
	}{
		{"provider, none named", nil, true, true},
		{"no provider", nil, false, false},
		{"provider, http-01 named", []string{"http-01"}, true, false},
		{"dns-01 named", []string{"tls-alpn-01", "dns-01"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UsesDNS01(tt.challenges, tt.provider); got != tt.want {
				t.Errorf("UsesDNS01(%q, %v) = %v, want %v", tt.challenges, tt.provider, got, tt.want)
			}
		})
	}
	if got := OneShotChallenge(true); got != "dns-01" {
		t.Errorf("OneShotChallenge(true) = %q, want dns-01", got)
	}
	if got := OneShotChallenge(false); got != "http-01" {
		t.Errorf("OneShotChallenge(false) = %q, want http-01", got)
	}
}

// TestManagerClientLimit: Settings.ClientLimit/ClientWindow (--client-limit)
// set the Manager's per-client budget of new names; unset keeps the
// Manager's default (trial 33: a load test or a load balancer's single
// address hit the 60-name default, and the proxy had no way to raise it).
func TestManagerClientLimit(t *testing.T) {
	s := &Settings{CAs: []string{"local"}, ClientLimit: 5000, ClientWindow: time.Hour}
	m, err := s.Manager(filestore.New(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if m.ClientLimit == nil || m.ClientLimit.Burst != 5000 || float64(m.ClientLimit.Rate)*3600 < 4999 {
		t.Fatalf("ClientLimit = %+v; want a burst of 5000 refilled at 5000 an hour", m.ClientLimit)
	}
	s = &Settings{CAs: []string{"local"}}
	if m, err = s.Manager(filestore.New(t.TempDir())); err != nil || m.ClientLimit != nil {
		t.Fatalf("without ClientLimit: %+v, %v; want the Manager's default (nil)", m.ClientLimit, err)
	}
}

// TestValidatesWildcards: dns-01 (named, or by default with a provider),
// dns-persist-01 or a local CA in the chain can obtain a wildcard;
// http-01 and tls-alpn-01 at an ACME CA cannot.
func TestValidatesWildcards(t *testing.T) {
	for _, tc := range []struct {
		challenges []string
		provider   bool
		cas        []string
		want       bool
	}{
		{nil, true, nil, true},
		{nil, false, nil, false},
		{[]string{"http-01", "tls-alpn-01"}, true, nil, false},
		{[]string{"dns-01"}, true, nil, true},
		{[]string{"dns-persist-01"}, false, []string{"letsencrypt"}, true},
		{nil, false, []string{"letsencrypt", "local"}, true},
		{[]string{"http-01"}, false, []string{"https://ca.example/dir"}, false},
	} {
		if got := ValidatesWildcards(tc.challenges, tc.provider, tc.cas); got != tc.want {
			t.Errorf("ValidatesWildcards(%v, %v, %v) = %v, want %v", tc.challenges, tc.provider, tc.cas, got, tc.want)
		}
	}
}
