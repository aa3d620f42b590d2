package testsvc

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

const opensslHint = "install openssl (Debian: apt-get install openssl)"

// OCSPResponder is a real OpenSSL OCSP responder answering for one
// issuing CA from an index file in `openssl ca` format, which the test
// fills with Add and Revoke.
//
// Every request is answered by running `openssl ocsp -index index.txt
// -rsigner ca.pem -rkey ca.key -CA ca.pem -reqin REQ -respout RESP`, behind
// an HTTP listener on 127.0.0.1: `openssl ocsp -port` (OpenSSL 3.0) takes
// only a port number and listens on every interface, which tests must not
// do. The response is OpenSSL's own, byte for byte.
type OCSPResponder struct {
	url   string
	index string
	bin   string
	dir   string
	ca    string
	key   string

	mu    sync.Mutex        // guards lines, order and the index file
	lines map[string]string // serial (upper-case hex) → index line
	order []string          // serials in the order added
}

// OCSP starts a responder on 127.0.0.1:port — a port chosen by the test
// (FreePort) before the certificates naming the responder were issued —
// signing with the issuing CA whose certificate and private key are
// issuerPEM and keyPEM (the responder is the CA itself). It stops when
// the test ends; a missing openssl skips the test (fails it under
// CI=true).
func OCSP(t testing.TB, port int, issuerPEM, keyPEM []byte) *OCSPResponder {
	t.Helper()
	dir := t.TempDir()
	r := &OCSPResponder{
		bin:   LookPath(t, "openssl", opensslHint),
		dir:   dir,
		url:   "http://127.0.0.1:" + strconv.Itoa(port),
		index: filepath.Join(dir, "index.txt"),
		ca:    filepath.Join(dir, "ca.pem"),
		key:   filepath.Join(dir, "ca.key"),
		lines: make(map[string]string),
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{r.ca, issuerPEM}, {r.key, keyPEM}, {r.index, nil}, {r.index + ".attr", []byte("unique_subject = no\n")}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("testsvc: OCSP responder: %v", err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

// ServeHTTP answers one OCSP request (POST, RFC 6960 §A.1) through
// openssl.
func (r *OCSPResponder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := r.answer(req.Context(), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(resp)
}

func (r *OCSPResponder) answer(ctx context.Context, request []byte) ([]byte, error) {
	f, err := os.CreateTemp(r.dir, "req")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(request); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	out := f.Name() + ".resp"
	defer os.Remove(out)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r.mu.Lock() // the index must not change under openssl
	msg, err := exec.CommandContext(ctx, r.bin, "ocsp", "-index", r.index, "-rsigner", r.ca, "-rkey", r.key,
		"-CA", r.ca, "-reqin", f.Name(), "-respout", out).CombinedOutput()
	r.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("openssl ocsp: %w: %s", err, msg)
	}
	return os.ReadFile(out)
}

// URL is the responder's address, to be put in certificates.
func (r *OCSPResponder) URL() string { return r.url }

// Add records leaf as valid ("V") in the index.
func (r *OCSPResponder) Add(t testing.TB, leaf *x509.Certificate) {
	t.Helper()
	r.set(t, leaf, "V", "")
}

// Revoke records leaf as revoked ("R", revoked now, reason keyCompromise)
// in the index, adding it if it is not there yet.
func (r *OCSPResponder) Revoke(t testing.TB, leaf *x509.Certificate) {
	t.Helper()
	r.set(t, leaf, "R", opensslTime(time.Now().Add(-time.Minute))+",keyCompromise")
}

// set writes leaf's line and rewrites the index. The format is that of
// `openssl ca`: status, expiry, revocation, serial, file name, subject,
// separated by tabs.
func (r *OCSPResponder) set(t testing.TB, leaf *x509.Certificate, status, revoked string) {
	t.Helper()
	serial := strings.ToUpper(leaf.SerialNumber.Text(16))
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	subject := "/CN=" + leaf.Subject.CommonName
	line := strings.Join([]string{status, opensslTime(leaf.NotAfter), revoked, serial, "unknown", subject}, "\t")
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.lines[serial]; !ok {
		r.order = append(r.order, serial)
	}
	r.lines[serial] = line
	var b strings.Builder
	for _, s := range r.order {
		b.WriteString(r.lines[s] + "\n")
	}
	tmp := r.index + ".new"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.index); err != nil {
		t.Fatal(err)
	}
}

// opensslTime is a time in the index's UTCTime form, YYMMDDHHMMSSZ.
func opensslTime(t time.Time) string { return t.UTC().Format("060102150405") + "Z" }

// LocalCAIssuer returns the PEM certificate and key of the intermediate
// with which a localca.CA keeping its state in st signs leaves (it must
// have issued at least once), for an OCSP responder of that CA.
func LocalCAIssuer(ctx context.Context, st storage.Storage) (certPEM, keyPEM []byte, err error) {
	data, err := st.Load(ctx, storage.LocalCAKey("intermediate"))
	if err != nil {
		return nil, nil, fmt.Errorf("loading the local CA's intermediate: %w", err)
	}
	var rec struct {
		CertificatePEM string `json:"certificate_pem"`
		KeyPEM         string `json:"key_pem"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, nil, fmt.Errorf("decoding the local CA's intermediate: %w", err)
	}
	return []byte(rec.CertificatePEM), []byte(rec.KeyPEM), nil
}

// SClientStatus runs `openssl s_client -status` against addr for name and
// returns its output: what a client asking for an OCSP staple sees
// ("OCSP Response Status: successful", "Cert Status: good", or "OCSP
// response: no response sent").
func SClientStatus(t testing.TB, addr, name string) string {
	t.Helper()
	bin := LookPath(t, "openssl", opensslHint)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "s_client", "-connect", addr, "-servername", name, "-status")
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput()
	return string(out)
}
