package cli

import (
	"crypto"
	"crypto/tls"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestRevokeProxyCertificate: the key of a certificate a running proxy
// serves leaks; "cert revoke -d NAME" on the proxy's storage (Redis) has
// the CA revoke it as keyCompromise, and the proxy serves a new
// certificate with a new key at once, without a restart. Revoking from
// another CA, or from a storage that does not hold it, says what to give.
func TestRevokeProxyCertificate(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	st := "redis://" + testsvc.Redis(t).Addr() + "/0?prefix=rv:"
	addr := "127.0.0.1:" + strconv.Itoa(ca.TLSPort())
	caFlags := []string{"--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", st}
	startProxy(t, append([]string{"--tls-addr", addr, "--backend", newBackend(t, "hello").url, "--allow", "a.test", "--profile", "default"}, caFlags...)...)
	roots := ca.IssuingRootPool(t)
	served := func() *tls.ConnectionState {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr, &tls.Config{ServerName: "a.test", RootCAs: roots})
		if err != nil {
			t.Fatalf("handshake for a.test: %v", err)
		}
		defer conn.Close()
		cs := conn.ConnectionState()
		return &cs
	}
	old := served().PeerCertificates[0]

	if r := ck(t, time.Minute, "cert", "revoke", "-d", "a.test", "--storage", st, "--ca", "staging"); r.code != 1 ||
		!strings.Contains(r.stderr, "but storage holds one from "+ca.DirectoryURL()+": give that --ca") {
		t.Errorf("revoking from another CA: exit %d, want 1 and the CA that holds it\n%s", r.code, r.stderr)
	}
	if r := ck(t, time.Minute, "cert", "revoke", "-d", "a.test", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", t.TempDir()); r.code != 1 ||
		!strings.Contains(r.stderr, "give the --storage of the proxy or server") {
		t.Errorf("revoking from an empty storage: exit %d, want 1 and what to give\n%s", r.code, r.stderr)
	}
	r := ck(t, time.Minute, append([]string{"cert", "revoke", "a.test", "--reason", "keycompromise"}, caFlags...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "-d NAME") {
		t.Errorf("revoking a name given as an argument: exit %d, want 2 and a hint naming -d\n%s", r.code, r.stderr)
	}
	r = ck(t, time.Minute, append([]string{"cert", "revoke", "-d", "a.test", "--reason", "keycompromise"}, caFlags...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "revoked a.test (ecdsa-p256 key, serial "+old.SerialNumber.Text(16)+", reason keyCompromise)") ||
		!strings.Contains(r.stderr, "replaces it with a new key") {
		t.Fatalf("cert revoke -d: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if cs := ca.CertStatus(t, old.SerialNumber); cs.Status != "Revoked" || cs.Reason == nil || *cs.Reason != 1 {
		t.Fatalf("the CA says %+v, want Revoked, reason 1 (keyCompromise)", cs)
	}
	deadline := time.Now().Add(20 * time.Second) // a notice on Redis: at once
	leaf := old
	for leaf.Equal(old) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		leaf = served().PeerCertificates[0]
	}
	if leaf.Equal(old) {
		t.Fatal("the proxy still serves the revoked certificate 20 s later")
	}
	if leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(old.PublicKey) {
		t.Error("the replacement has the compromised key")
	}
}

// TestRevokeStoredOutDir: a certificate cert issue wrote to an --out-dir
// (and kept in --storage) revoked with -d is replaced by the next cert
// renew, due or not, with a new key after keyCompromise.
func TestRevokeStoredOutDir(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	storageDir, out := t.TempDir(), t.TempDir()
	if r := ck(t, time.Minute, append(pebbleArgs(ca, storageDir, out), "-d", "o.test")...); r.code != 0 {
		t.Fatalf("issuing: %s", r.stderr)
	}
	old := readPair(t, out, "o.test")[0]
	if r := ck(t, time.Minute, "cert", "revoke", "-d", "o.test", "--reason", "keyCompromise", "--ca", ca.DirectoryURL(),
		"--ca-roots", ca.ListenerRootFile(), "--storage", storageDir); r.code != 0 || !strings.Contains(r.stderr, "the next cert renew") {
		t.Fatalf("cert revoke -d: exit %d\n%s", r.code, r.stderr)
	}
	renew := pebbleArgs(ca, storageDir, out)
	renew[1] = "renew"
	r := ck(t, time.Minute, renew...)
	if r.code != 0 || !strings.Contains(r.stdout, "renewed") {
		t.Fatalf("cert renew after the revocation: exit %d, want o.test renewed\n%s%s", r.code, r.stdout, r.stderr)
	}
	leaf := readPair(t, out, "o.test")[0]
	if leaf.Equal(old) || leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(old.PublicKey) {
		t.Error("cert renew kept the revoked certificate or its compromised key")
	}

	// Another reason is signed by the account that ordered it, whatever
	// --email says: no other account is registered for it.
	r = ck(t, time.Minute, "cert", "revoke", "-d", "o.test", "--reason", "superseded", "--email", "other@o.test", "--ca", ca.DirectoryURL(),
		"--ca-roots", ca.ListenerRootFile(), "--storage", storageDir)
	if r.code != 0 {
		t.Fatalf("cert revoke -d --reason superseded --email other: exit %d\n%s", r.code, r.stderr)
	}
	if cs := ca.CertStatus(t, leaf.SerialNumber); cs.Status != "Revoked" || cs.Reason == nil || *cs.Reason != 4 {
		t.Errorf("the CA says %+v, want Revoked, reason 4 (superseded)", cs)
	}
	if accounts, _ := filepath.Glob(filepath.Join(storageDir, "accounts", "*", "other@o.test*")); len(accounts) > 0 {
		t.Errorf("an account was registered for --email other@o.test: %v", accounts)
	}
}

// TestRevokeRecordedCA: cert revoke --cert of an --out-dir pair without
// --ca revokes at the CA its renewal settings name, trusting their
// ca_roots and signing with their account, as cert renew would reach
// it: it went to --ca's default, Let's Encrypt. A --ca given wins. Any
// CA but the loopback Pebble is unreachable here (HTTPS_PROXY is a
// closed loopback port, which loopback addresses bypass), so a
// regression cannot reach Let's Encrypt.
func TestRevokeRecordedCA(t *testing.T) {
	for _, v := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		t.Setenv(v, "http://127.0.0.1:9")
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	ca := testca.Start(t, testca.Options{})
	storageDir, out := t.TempDir(), t.TempDir()
	if r := ck(t, time.Minute, append(pebbleArgs(ca, storageDir, out), "-d", "rc.test", "--email", "ops@rc.test")...); r.code != 0 {
		t.Fatalf("issuing: exit %d\n%s", r.code, r.stderr)
	}
	leaf := readPair(t, out, "rc.test")[0]
	certFile := filepath.Join(out, "certs", "rc.test.pem")
	// --ca given wins: revoking at another CA (unreachable here) leaves it valid.
	if r := ck(t, time.Minute, "cert", "revoke", "--cert", certFile, "--ca", "https://127.0.0.2:9/dir", "--storage", storageDir); r.code == 0 {
		t.Errorf("cert revoke --ca another: exit 0, want a failure to reach it\n%s", r.stderr)
	}
	if cs := ca.CertStatus(t, leaf.SerialNumber); cs.Status != "Valid" {
		t.Fatalf("after a revocation at another --ca, Pebble says %+v", cs)
	}
	r := ck(t, time.Minute, "cert", "revoke", "--cert", certFile, "--reason", "superseded", "--storage", storageDir)
	conf := filepath.Join(out, "renewal", "rc.test.conf")
	if r.code != 0 || !strings.Contains(r.stderr, "revoking at "+ca.DirectoryURL()+", the CA of "+conf) {
		t.Fatalf("cert revoke --cert without --ca: exit %d, want 0 and the recorded CA named\n%s%s", r.code, r.stdout, r.stderr)
	}
	if cs := ca.CertStatus(t, leaf.SerialNumber); cs.Status != "Revoked" || cs.Reason == nil || *cs.Reason != 4 {
		t.Errorf("Pebble says %+v, want Revoked, reason 4 (superseded)", cs)
	}
	if accounts, _ := filepath.Glob(filepath.Join(storageDir, "accounts", "*", "*.json")); len(accounts) != 1 {
		t.Errorf("accounts in storage after the revocation: %v, want the one that ordered", accounts)
	}
}
