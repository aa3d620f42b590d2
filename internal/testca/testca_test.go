package testca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/mholt/acmez/v3/acme"
)

// directory is the part of an ACME directory the tests look at.
type directory struct {
	NewNonce    string `json:"newNonce"`
	NewAccount  string `json:"newAccount"`
	NewOrder    string `json:"newOrder"`
	RenewalInfo string `json:"renewalInfo"`
	Meta        struct {
		Profiles                map[string]string `json:"profiles"`
		ExternalAccountRequired bool              `json:"externalAccountRequired"`
	} `json:"meta"`
}

func fetchDirectory(t *testing.T, client *http.Client, url string) directory {
	t.Helper()
	body, err := get(t.Context(), client, url)
	if err != nil {
		t.Fatalf("fetching directory: %v", err)
	}
	var dir directory
	if err := json.Unmarshal(body, &dir); err != nil {
		t.Fatalf("decoding directory %s: %v", body, err)
	}
	return dir
}

func TestStart(t *testing.T) {
	t.Parallel()
	ca := Start(t, Options{})

	// A client that trusts RootPool alone reaches the directory.
	client := &http.Client{Transport: newTransport(ca.RootPool())}
	t.Cleanup(client.CloseIdleConnections)
	dir := fetchDirectory(t, client, ca.DirectoryURL())
	origin := strings.TrimSuffix(ca.DirectoryURL(), "/dir")
	for name, u := range map[string]string{"newNonce": dir.NewNonce, "newAccount": dir.NewAccount, "newOrder": dir.NewOrder} {
		if !strings.HasPrefix(u, origin+"/") {
			t.Errorf("directory %s = %q, want it under %s", name, u, origin)
		}
	}
	if got := slices.Sorted(maps.Keys(dir.Meta.Profiles)); !slices.Equal(got, []string{"default"}) {
		t.Errorf("meta.profiles = %v, want [default]", got)
	}
	if dir.RenewalInfo == "" {
		t.Error("directory has no renewalInfo (ARI)")
	}

	// The root file is what RootsPEM says, and RootPool trusts it.
	data, err := os.ReadFile(ca.ListenerRootFile())
	if err != nil || !bytes.Equal(data, ca.RootsPEM()) {
		t.Errorf("ListenerRootFile() content = %q, %v; want RootsPEM()", data, err)
	}

	roots := ca.IssuingRoots(t)
	if len(roots) != 1 || !roots[0].IsCA {
		t.Fatalf("IssuingRoots() = %d certificates, want 1 CA", len(roots))
	}
	if ca.HTTPPort() == 0 || ca.TLSPort() == 0 || ca.HTTPPort() == ca.TLSPort() {
		t.Errorf("HTTPPort() = %d, TLSPort() = %d; want two ports", ca.HTTPPort(), ca.TLSPort())
	}

	// Every name resolves to 127.0.0.1 through DNSAddr, until told otherwise.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, ca.DNSAddr())
	}}
	ctx := t.Context()
	if addrs, err := r.LookupHost(ctx, "anything.example"); err != nil || !slices.Equal(addrs, []string{"127.0.0.1"}) {
		t.Errorf("LookupHost(anything.example) = %v, %v; want [127.0.0.1]", addrs, err)
	}
	ca.AddA(t, "moved.example", "127.0.0.2")
	if addrs, err := r.LookupHost(ctx, "moved.example"); err != nil || !slices.Equal(addrs, []string{"127.0.0.2"}) {
		t.Errorf("after AddA: LookupHost(moved.example) = %v, %v; want [127.0.0.2]", addrs, err)
	}
	ca.ClearA(t, "moved.example")
	ca.AddTXT(t, "_acme-challenge.x.example", "token")
	if txt, err := r.LookupTXT(ctx, "_acme-challenge.x.example"); err != nil || !slices.Equal(txt, []string{"token"}) {
		t.Errorf("after AddTXT: LookupTXT = %v, %v; want [token]", txt, err)
	}
	ca.ClearTXT(t, "_acme-challenge.x.example")
}

func TestOptions(t *testing.T) {
	t.Parallel()
	ca := Start(t, Options{
		Profiles: map[string]Profile{
			"classic":    {Description: "90 days", ValidityPeriod: 90 * 24 * time.Hour},
			"shortlived": {Description: "one minute", ValidityPeriod: time.Minute},
		},
		EAB:            map[string]string{"kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"},
		EABRequired:    true,
		AlternateRoots: 1,
		ChainLength:    2,
		KeyAlgorithm:   "rsa",
	})
	dir := fetchDirectory(t, ca.HTTPClient(), ca.DirectoryURL())
	want := map[string]string{"classic": "90 days", "shortlived": "one minute"}
	if len(dir.Meta.Profiles) != len(want) || dir.Meta.Profiles["classic"] != want["classic"] || dir.Meta.Profiles["shortlived"] != want["shortlived"] {
		t.Errorf("meta.profiles = %v, want %v", dir.Meta.Profiles, want)
	}
	if got, want := ca.Profiles(), []string{"classic", "shortlived"}; !slices.Equal(got, want) {
		t.Errorf("Profiles() = %v, want %v", got, want)
	}
	if !dir.Meta.ExternalAccountRequired {
		t.Error("meta.externalAccountRequired = false, want true")
	}
	roots := ca.IssuingRoots(t)
	if len(roots) != 2 || roots[0].Equal(roots[1]) {
		t.Fatalf("IssuingRoots() = %d certificates, want 2 distinct roots", len(roots))
	}
	if _, ok := roots[0].PublicKey.(*ecdsa.PublicKey); ok {
		t.Error("KeyAlgorithm rsa: root has an ECDSA key")
	}
	// ChainLength 2: /intermediates/0 is issued by an intermediate, not the root.
	inter := ca.fetchCert(t, "/intermediates/0")
	if err := inter.CheckSignatureFrom(roots[0]); err == nil {
		t.Error("ChainLength 2: the issuing intermediate is signed by the root directly")
	}

	// Without an external account binding, newAccount is refused.
	client := &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient()}
	_, err := client.NewAccount(t.Context(), acme.Account{PrivateKey: newKey(t), TermsOfServiceAgreed: true})
	var prob acme.Problem
	if !errors.As(err, &prob) || prob.Type != acme.ProblemTypeExternalAccountRequired {
		t.Errorf("NewAccount without EAB = %v, want %s", err, acme.ProblemTypeExternalAccountRequired)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"zero", Options{}, true},
		{"nonce 100", Options{NonceReject: 100}, true},
		{"nonce 101", Options{NonceReject: 101}, false},
		{"reuse -1", Options{AuthzReuse: -1}, false},
		{"bad key algorithm", Options{KeyAlgorithm: "ed25519"}, false},
		{"negative validity", Options{Profiles: map[string]Profile{"p": {ValidityPeriod: -time.Second}}}, false},
		{"unnamed profile", Options{Profiles: map[string]Profile{"": {}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.validate(); (err == nil) != tt.ok {
				t.Errorf("validate() = %v, want ok %t", err, tt.ok)
			}
		})
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// http01 answers Pebble's http-01 requests on a port, with the key
// authorizations set by the test.
type http01 struct {
	mu    sync.Mutex // guards paths
	paths map[string]string
}

func serveHTTP01(t *testing.T, port int) *http01 {
	t.Helper()
	s := &http01{paths: make(map[string]string)}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listening on the http-01 port: %v", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *http01) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ka, ok := s.paths[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, ka)
}

func (s *http01) set(path, keyAuth string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paths[path] = keyAuth
}

// issue orders a certificate for name, solving http-01, and returns the leaf.
func issue(t *testing.T, client *acme.Client, acct acme.Account, solver *http01, name, replaces string) *x509.Certificate {
	t.Helper()
	ctx := t.Context()
	order, err := client.NewOrder(ctx, acct, acme.Order{
		Identifiers: []acme.Identifier{{Type: "dns", Value: name}},
		Profile:     "default",
		Replaces:    replaces,
	})
	if err != nil {
		t.Fatalf("NewOrder(%s): %v", name, err)
	}
	for _, u := range order.Authorizations {
		authz, err := client.GetAuthorization(ctx, acct, u)
		if err != nil {
			t.Fatalf("GetAuthorization: %v", err)
		}
		if authz.Status == acme.StatusValid {
			continue // Pebble reused an authorization of an earlier order
		}
		i := slices.IndexFunc(authz.Challenges, func(c acme.Challenge) bool { return c.Type == "http-01" })
		if i < 0 {
			t.Fatalf("authorization for %s offers no http-01", name)
		}
		chal := authz.Challenges[i]
		solver.set(chal.HTTP01ResourcePath(), chal.KeyAuthorization)
		if _, err := client.InitiateChallenge(ctx, acct, chal); err != nil {
			t.Fatalf("InitiateChallenge: %v", err)
		}
		if _, err := client.PollAuthorization(ctx, acct, authz); err != nil {
			t.Fatalf("PollAuthorization: %v", err)
		}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	order, err = client.FinalizeOrder(ctx, acct, order, csr)
	if err != nil {
		t.Fatalf("FinalizeOrder: %v", err)
	}
	chains, err := client.GetCertificateChain(ctx, acct, order.Certificate)
	if err != nil || len(chains) == 0 {
		t.Fatalf("GetCertificateChain: %d chains, %v", len(chains), err)
	}
	block, _ := pem.Decode(chains[0].ChainPEM)
	if block == nil {
		t.Fatalf("no PEM in the chain %q", chains[0].ChainPEM)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// TestIssueAndCounters issues a certificate and its replacement through
// Pebble, solving http-01 on HTTPPort, and checks the counters.
func TestIssueAndCounters(t *testing.T) {
	t.Parallel()
	ca := Start(t, Options{})
	solver := serveHTTP01(t, ca.HTTPPort())
	client := &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), PollInterval: 20 * time.Millisecond}
	ctx := t.Context()

	acct, err := client.NewAccount(ctx, acme.Account{PrivateKey: newKey(t), TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("NewAccount: %v", err)
	}
	ca.WaitFor(t, "one account", func() bool { return ca.Accounts() == 1 })
	if _, err := client.GetAccount(ctx, acct); err != nil {
		t.Fatalf("GetAccount: %v", err)
	}

	leaf := issue(t, client, acct, solver, "first.example", "")
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "first.example", Roots: ca.IssuingRootPool(t), Intermediates: intermediates(t, ca)}); err != nil {
		t.Errorf("issued certificate does not verify against IssuingRootPool: %v", err)
	}
	if got, want := leaf.NotAfter.Sub(leaf.NotBefore), defaultValidity-time.Second; got != want {
		t.Errorf("validity = %v, want %v (profile default)", got, want)
	}
	ca.WaitFor(t, "one order", func() bool { return ca.Orders() == 1 })

	ariID, err := acme.ARIUniqueIdentifier(leaf)
	if err != nil {
		t.Fatal(err)
	}
	issue(t, client, acct, solver, "first.example", ariID)
	ca.WaitFor(t, "two orders, one replacement", func() bool { return ca.Orders() == 2 && ca.Replacements() == 1 })
	ca.WaitForLog(t, "has been marked as replaced")
	if got := ca.Accounts(); got != 1 {
		t.Errorf("Accounts() = %d after a lookup, want 1", got)
	}
}

func intermediates(t *testing.T, ca *CA) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	p.AddCert(ca.fetchCert(t, "/intermediates/0"))
	return p
}

func TestRestart(t *testing.T) {
	t.Parallel()
	ca := Start(t, Options{})
	client := &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient()}
	ctx := t.Context()
	acct, err := client.NewAccount(ctx, acme.Account{PrivateKey: newKey(t), TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("NewAccount: %v", err)
	}
	ca.WaitFor(t, "one account", func() bool { return ca.Accounts() == 1 })
	root := ca.IssuingRoots(t)[0]
	dirURL := ca.DirectoryURL()

	ca.Stop()
	ca.Stop()
	if _, err := get(ctx, ca.HTTPClient(), dirURL); err == nil {
		t.Fatal("directory answered after Stop")
	}

	ca.Restart(t)
	if got := ca.DirectoryURL(); got != dirURL {
		t.Errorf("DirectoryURL() = %q after Restart, want %q", got, dirURL)
	}
	if got := ca.Accounts(); got != 0 {
		t.Errorf("Accounts() = %d after Restart, want 0", got)
	}
	if ca.IssuingRoots(t)[0].Equal(root) {
		t.Error("the issuing root survived Restart")
	}
	_, err = client.GetAccount(ctx, acct)
	var prob acme.Problem
	if !errors.As(err, &prob) || prob.Type != acme.ProblemTypeAccountDoesNotExist {
		t.Errorf("GetAccount after Restart = %v, want %s", err, acme.ProblemTypeAccountDoesNotExist)
	}
}

// TestQuit: Quit leaves Pebble's goroutine stacks in its log and the CA
// unreachable.
func TestQuit(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGQUIT on Windows")
	}
	t.Parallel()
	ca := Start(t, Options{})
	ca.Quit()
	ca.WaitForLog(t, "goroutine ")
	if _, err := get(t.Context(), ca.HTTPClient(), ca.DirectoryURL()); err == nil {
		t.Error("directory answered after Quit")
	}
}

// TestDNSServer points Pebble at a BIND started by testsvc and solves dns-01
// by an RFC 2136 update with nsupdate: Pebble reads the TXT record through
// Options.DNSServer.
func TestDNSServer(t *testing.T) {
	t.Parallel()
	named := testsvc.Named(t, testsvc.NamedOptions{})
	nsupdate := testsvc.LookPath(t, "nsupdate", "install Debian's bind9-dnsutils")
	ca := Start(t, Options{DNSServer: named.Addr()})
	if ca.DNSAddr() != named.Addr() {
		t.Errorf("DNSAddr() = %q, want %q", ca.DNSAddr(), named.Addr())
	}
	client := &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), PollInterval: 20 * time.Millisecond}
	ctx := t.Context()
	acct, err := client.NewAccount(ctx, acme.Account{PrivateKey: newKey(t), TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("NewAccount: %v", err)
	}
	order, err := client.NewOrder(ctx, acct, acme.Order{Identifiers: []acme.Identifier{{Type: "dns", Value: "*.a.test"}}})
	if err != nil {
		t.Fatalf("NewOrder: %v", err)
	}
	authz, err := client.GetAuthorization(ctx, acct, order.Authorizations[0])
	if err != nil {
		t.Fatalf("GetAuthorization: %v", err)
	}
	i := slices.IndexFunc(authz.Challenges, func(c acme.Challenge) bool { return c.Type == "dns-01" })
	if i < 0 {
		t.Fatal("no dns-01 challenge for a wildcard")
	}
	chal := authz.Challenges[i]

	host, port, _ := net.SplitHostPort(named.Addr())
	cmd := exec.CommandContext(ctx, nsupdate, "-t", "5", "-y", named.Algorithm()+":"+named.KeyName()+":"+named.Secret())
	cmd.Stdin = strings.NewReader("server " + host + " " + port + "\nzone a.test\nupdate add " +
		chal.DNS01TXTRecordName() + ". 60 TXT \"" + chal.DNS01KeyAuthorization() + "\"\nsend\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nsupdate: %v\n%s", err, out)
	}
	if _, err := client.InitiateChallenge(ctx, acct, chal); err != nil {
		t.Fatalf("InitiateChallenge: %v", err)
	}
	if authz, err := client.PollAuthorization(ctx, acct, authz); err != nil || authz.Status != acme.StatusValid {
		t.Fatalf("PollAuthorization = %q, %v; want valid", authz.Status, err)
	}

	// Without a pebble-challtestsrv, the record helpers are a mistake.
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ca.AddA(ft, "x.a.test", "127.0.0.2")
	}()
	<-done
	if !ft.fatal {
		t.Error("AddA with Options.DNSServer set did not fail the test")
	}
}

// fatalRecorder records a Fatalf instead of failing the test, from a
// goroutine of its own (Fatalf ends it with runtime.Goexit).
type fatalRecorder struct {
	testing.TB
	fatal bool
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(string, ...any) {
	f.fatal = true
	runtime.Goexit()
}

// TestARISerialHighBit: Pebble finds the certificate an order replaces
// when the serial's DER encoding starts with the 0x00 that a first byte
// of 0x80 or more needs (RFC 9773's identifier carries the DER bytes;
// unpatched Pebble keys its orders by big.Int.Bytes() and answers 500
// "could not find an order for the given certificate"). About one serial
// in 256 is such: the test orders until it has one.
func TestARISerialHighBit(t *testing.T) {
	t.Parallel()
	ca := Start(t, Options{})
	solver := serveHTTP01(t, ca.HTTPPort())
	client := &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), PollInterval: 5 * time.Millisecond}
	ctx := t.Context()
	acct, err := client.NewAccount(ctx, acme.Account{PrivateKey: newKey(t), TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("NewAccount: %v", err)
	}
	leaf := issue(t, client, acct, solver, "serial.example", "")
	for i := 0; leaf.SerialNumber.Bytes()[0] < 0x80; i++ {
		if i == 3000 {
			t.Skip("no serial with its high bit set in 3000 orders")
		}
		leaf = issue(t, client, acct, solver, "serial.example", "")
	}
	ariID, err := acme.ARIUniqueIdentifier(leaf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("serial %x, ARI identifier %s", leaf.SerialNumber.Bytes(), ariID)
	if _, err := client.NewOrder(ctx, acct, acme.Order{Identifiers: []acme.Identifier{{Type: "dns", Value: "serial.example"}},
		Profile: "default", Replaces: ariID}); err != nil {
		t.Fatalf("replacing serial %x: %v", leaf.SerialNumber.Bytes(), err)
	}
}
