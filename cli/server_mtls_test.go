package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// writeTestCert writes a certificate for cn (client authentication) and
// its key as PEM files in dir, signed by parent (self-signed CA when
// parent is nil), and returns the paths and what signs further ones.
func writeTestCert(t *testing.T, dir, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: parent == nil, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert, key
}

// TestServerClientCertificate: with --client-ca and --api-cert, curl with
// a client certificate from that CA gets the key over HTTPS (the audit
// line names its subject); without one, or with one from another CA, it
// gets none.
func TestServerClientCertificate(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		testsvc.Unavailable(t, "curl", "install it: apt-get install curl", err)
	}
	dir := t.TempDir()
	caFile, _, caCert, caKey := writeTestCert(t, dir, "fleet-ca", nil, nil)
	clientCert, clientKey, _, _ := writeTestCert(t, dir, "web1", caCert, caKey)
	_, _, otherCA, otherKey := writeTestCert(t, dir, "other-ca", nil, nil)
	intruderCert, intruderKey, _, _ := writeTestCert(t, dir, "intruder", otherCA, otherKey)
	apiCert, apiKey := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	if r := ck(t, 30*time.Second, "selfsigned", "-d", "127.0.0.1", "--cert-out", apiCert, "--key-out", apiKey); r.code != 0 {
		t.Fatalf("selfsigned: exit %d %s", r.code, r.stderr)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t))
	auditLog := filepath.Join(dir, "audit.log")
	startServer(t, "--listen", addr, "--client-ca", caFile, "--api-cert", apiCert+":"+apiKey, "--ca", "local",
		"--storage", t.TempDir(), "--allow", "a.test", "--audit-log", auditLog)

	fetch := func(args ...string) (status string, body string) {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"-sS", "--max-time", "30", "--cacert", apiCert, "-o", "-", "-w", "\n%{http_code}",
			"https://" + addr + "/v1/certificates/a.test"}, args...)...)
		out, _ := cmd.CombinedOutput()
		s := strings.TrimSpace(string(out))
		i := strings.LastIndex(s, "\n")
		return s[i+1:], s[:max(i, 0)]
	}
	code, body := fetch("--cert", clientCert, "--key", clientKey)
	if code != "200" {
		t.Fatalf("curl with a client certificate from --client-ca: %s %.300s", code, body)
	}
	var c certserver.Certificate
	if err := json.Unmarshal([]byte(body), &c); err != nil || !strings.Contains(c.Key, "PRIVATE KEY") {
		t.Fatalf("answer: %v %.300s", err, body)
	}
	if code, _ := fetch(); code != "401" {
		t.Errorf("curl without a client certificate: %s, want 401", code)
	}
	if code, _ := fetch("--cert", intruderCert, "--key", intruderKey); code == "200" {
		t.Errorf("curl with a client certificate from another CA got the key")
	}
	waitAudit(t, auditLog, `"who":"cert CN=web1 serial `)
	if data, _ := os.ReadFile(auditLog); strings.Count(string(data), `"msg":"key handed out"`) != 1 {
		t.Errorf("audit log has %d hand-outs, want 1 (only the authenticated one):\n%s", strings.Count(string(data), `"msg":"key handed out"`), data)
	}
}
