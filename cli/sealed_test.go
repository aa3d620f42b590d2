package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// writeStorageKey writes a new storage key file (storage keygen) and
// returns its name.
func writeStorageKey(t *testing.T) string {
	t.Helper()
	r := ck(t, 10*time.Second, "storage", "keygen")
	if r.code != 0 {
		t.Fatalf("storage keygen: %s", r.stderr)
	}
	f := filepath.Join(t.TempDir(), "storage.key")
	if err := os.WriteFile(f, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// recordSerial returns the serial of the leaf in a clear certificate
// record file.
func recordSerial(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		ChainPEM []byte `json:"chain_pem"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(rec.ChainPEM)
	if block == nil {
		t.Fatalf("%s holds no PEM chain", file)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.String()
}

// TestUnsealedRecordRefused: in a storage encrypted with
// --storage-key-file, a certificate record stored in clear — a key and
// certificate of someone's choosing, planted by anyone who can write
// storage — is refused and named: status lists it as damaged, and a
// running proxy does not serve it but obtains a certificate of its own.
func TestUnsealedRecordRefused(t *testing.T) {
	keyFile := writeStorageKey(t)
	storageDir := t.TempDir()
	issueSealed(t, storageDir, keyFile, "good.test")
	// The planted record: a valid one, made elsewhere without encryption.
	elsewhere := t.TempDir()
	issueLocal(t, elsewhere, "planted.test")
	plantedKey := "certificates/local/planted.test.json"
	data, err := os.ReadFile(filepath.Join(elsewhere, filepath.FromSlash(plantedKey)))
	if err != nil {
		t.Fatal(err)
	}
	plantedFile := filepath.Join(storageDir, filepath.FromSlash(plantedKey))
	if err := os.WriteFile(plantedFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	plantedSerial := recordSerial(t, plantedFile)

	r := ck(t, 30*time.Second, "status", "--json", "--storage", storageDir, "--storage-key-file", keyFile)
	// Listed, and named in the non-zero exit's message (issue 18).
	if r.code == 0 || !strings.Contains(r.stdout, plantedKey) || !strings.Contains(r.stdout, `"damaged"`) || !strings.Contains(r.stderr, plantedKey) {
		t.Errorf("status: exit %d, want the planted record %s listed as damaged and a non-zero exit naming it:\n%s%s", r.code, plantedKey, r.stdout, r.stderr)
	}

	port := testsvc.FreePort(t)
	p := startProxyLogged(t, "--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--ca", "local",
		"--allow", "planted.test", "--allow", "good.test", "--storage", storageDir, "--storage-key-file", keyFile,
		"--backend", newBackend(t, "hello").url)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port),
		&tls.Config{ServerName: "planted.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake for planted.test: %v\n%s", err, p.output())
	}
	served := conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	conn.Close()
	if served == plantedSerial {
		t.Errorf("the proxy served the certificate planted in clear in its encrypted storage (serial %s)", served)
	}
	if !within(10*time.Second, func() bool { return strings.Contains(p.output(), plantedKey) }) {
		t.Errorf("the proxy's output does not name the refused record %s:\n%s", plantedKey, p.output())
	}
}

// TestStorageEncryptionTurnedOn: the move from a storage in clear to an
// encrypted one still works with clear private keys refused: a node given
// a key file for a storage that was never encrypted refuses to start and
// says to run storage rekey; rekey seals every private key; then the node
// starts and serves the certificate it had, with no new issuance.
func TestStorageEncryptionTurnedOn(t *testing.T) {
	storageDir := t.TempDir()
	issueLocal(t, storageDir, "good.test")
	serial := recordSerial(t, filepath.Join(storageDir, "certificates", "local", "good.test.json"))
	keyFile := writeStorageKey(t)
	port := strconv.Itoa(testsvc.FreePort(t))
	args := []string{"proxy", "--tls-addr", "127.0.0.1:" + port, "--ca", "local", "--allow", "good.test",
		"--storage", storageDir, "--storage-key-file", keyFile, "--backend", "http://127.0.0.1:" + port}

	if r := ck(t, 30*time.Second, args...); r.code == 0 || !strings.Contains(r.stderr, "certkeeper storage rekey --storage "+storageDir) {
		t.Fatalf("proxy with a key file on a storage never encrypted: exit %d, stderr %q; want a refusal saying to run storage rekey", r.code, r.stderr)
	}
	r := ck(t, 30*time.Second, "storage", "rekey", "--storage", storageDir, "--storage-key-file", keyFile)
	if r.code != 0 || !strings.Contains(r.stderr, "(3 of them were in clear)") {
		t.Fatalf("storage rekey: exit %d, stderr %q; want the certificate and the local CA's two keys sealed", r.code, r.stderr)
	}
	for name, data := range files(t, storageDir) {
		if strings.Contains(data, "PRIVATE KEY") || strings.Contains(data, "key_pem") {
			t.Errorf("after rekey %s holds a private key in clear", name)
		}
	}
	startProxyLogged(t, args[1:]...)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", "127.0.0.1:"+port,
		&tls.Config{ServerName: "good.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake for good.test after rekey: %v", err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.String(); got != serial {
		t.Errorf("after rekey good.test is served serial %s, want the stored one %s (no new issuance)", got, serial)
	}
}

// TestStatusEncryptedWithoutKey: status on an encrypted storage without
// --storage-key-file exits 1 saying the storage is encrypted and to give
// the key file, and lists nothing (every record would read as damaged). A
// sealed record among records in clear (past the few the check at open
// reads) is listed as encrypted, not as a JSON decoding error.
func TestStatusEncryptedWithoutKey(t *testing.T) {
	keyFile := writeStorageKey(t)
	sealed := t.TempDir()
	issueSealed(t, sealed, keyFile, "z.test")
	want := sealed + " is encrypted (certificates/local/z.test.json is sealed): give --storage-key-file, the key file the proxy or server on it uses"
	for _, args := range [][]string{{"status", "--storage", sealed}, {"status", "--json", "--storage", sealed}} {
		r := ck(t, 30*time.Second, args...)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", strings.Join(args, " "), r.code, r.stdout, r.stderr, want)
		}
	}

	mixed := t.TempDir()
	for _, name := range []string{"a.test", "b.test", "c.test", "d.test", "e.test"} {
		issueLocal(t, mixed, name)
	}
	const key = "certificates/local/z.test.json"
	data, err := os.ReadFile(filepath.Join(sealed, filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mixed, filepath.FromSlash(key)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := ck(t, 30*time.Second, "status", "--storage", mixed)
	if want := key + " is encrypted (sealed with a storage key)"; r.code != 1 || !strings.Contains(r.stdout, want) || strings.Contains(r.stdout, "invalid character") {
		t.Errorf("status of clear records and a sealed one: exit %d, stdout %q; want exit 1 and %q", r.code, r.stdout, want)
	}
}

// issueSealed issues name from the local CA into the storage dir sealed
// with keyFile.
func issueSealed(t *testing.T, dir, keyFile, name string) {
	t.Helper()
	r := ck(t, time.Minute, "cert", "issue", "--ca", "local", "-d", name, "--storage", dir,
		"--storage-key-file", keyFile, "--out-dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("cert issue with --storage-key-file: exit %d\n%s", r.code, r.stderr)
	}
}
