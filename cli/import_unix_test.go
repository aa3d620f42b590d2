//go:build unix

package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testIssuer is a CA made for a test: its root in a PEM file (for
// --ca-roots) and leaves it signs.
type testIssuer struct {
	rootFile string
	root     *x509.Certificate
	key      *ecdsa.PrivateKey
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "import test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(f, []byte(certsPEM(root)), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testIssuer{rootFile: f, root: root, key: key}
}

// leaf issues a certificate for name and returns it and its key as PEM
// ("EC PRIVATE KEY", as acme.sh and certbot write them).
func (ti *testIssuer) leaf(t *testing.T, name string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ti.root, &key.PublicKey, ti.key)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
}

// ckBounded runs the binary as ck does, but with its address space capped
// (ulimit -v, 2 GiB, where the system allows it: Linux does) so that a
// reader without bounds kills only itself, not the machine, and reports a
// run that does not end within timeout instead of failing t.
func ckBounded(t *testing.T, timeout time.Duration, args ...string) (r result, hung bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", `ulimit -v 2097152 2>/dev/null; exec "$0" "$@"`, binary}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r = result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, true
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running certkeeper %s: %v", strings.Join(args, " "), err)
	}
	return r, false
}

// TestImportHostileState (security): the importers read only regular
// files inside the tool's directory, at most 1 MiB each, whatever the
// directory holds: a key symlinked to /dev/zero, a FIFO, a symlink to a
// file outside, a certbot renewal configuration naming a sibling directory
// (/etc/letsencrypt-evil), an acme.sh Le_API with "..", an account key
// whose JWK "d" is longer than its curve, oversized files and keys. Each
// import ends within seconds (a FIFO does not hang it, /dev/zero does not
// exhaust memory: the child's address space is capped), exits 1 without a
// panic, names the file and why, and imports nothing from outside.
func TestImportHostileState(t *testing.T) {
	ti := newTestIssuer(t)
	certPEM, keyPEM := ti.leaf(t, "z.test")
	// acmesh lays out a certificate folder z.test/ in dir; key replaces
	// its key file when not nil.
	acmesh := func(t *testing.T, dir, api string, key func(file string)) {
		t.Helper()
		writeFiles(t, map[string]string{
			filepath.Join(dir, "z.test", "z.test.conf"): "Le_Domain='z.test'\nLe_API='" + api + "'\n",
			filepath.Join(dir, "z.test", "z.test.cer"):  certPEM,
			filepath.Join(dir, "z.test", "z.test.key"):  keyPEM,
		})
		if key != nil {
			f := filepath.Join(dir, "z.test", "z.test.key")
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
			key(f)
		}
	}
	symlink := func(t *testing.T, target, link string) {
		t.Helper()
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name  string
		tool  string
		setup func(t *testing.T, dir string) // dir is in an empty directory of its own
		want  []string
	}{
		{"key symlinked to /dev/zero", "acme.sh", func(t *testing.T, dir string) {
			acmesh(t, dir, "https://ca.test/dir", func(f string) { symlink(t, "/dev/zero", f) })
		}, []string{"z.test/z.test.key", "outside"}},
		{"key is a FIFO", "acme.sh", func(t *testing.T, dir string) {
			acmesh(t, dir, "https://ca.test/dir", func(f string) {
				if err := syscall.Mkfifo(f, 0o600); err != nil {
					t.Fatal(err)
				}
			})
		}, []string{"z.test/z.test.key", "not a regular file"}},
		{"key symlinked outside", "acme.sh", func(t *testing.T, dir string) {
			outside := filepath.Join(filepath.Dir(dir), "elsewhere.key")
			writeFiles(t, map[string]string{outside: keyPEM})
			acmesh(t, dir, "https://ca.test/dir", func(f string) { symlink(t, outside, f) })
		}, []string{"z.test/z.test.key", "outside"}},
		{"key symlinked outside, relative", "acme.sh", func(t *testing.T, dir string) {
			writeFiles(t, map[string]string{filepath.Join(filepath.Dir(dir), "elsewhere.key"): keyPEM})
			acmesh(t, dir, "https://ca.test/dir", func(f string) { symlink(t, "../../elsewhere.key", f) })
		}, []string{"z.test/z.test.key", "outside"}},
		{"certbot paths in a sibling directory", "certbot", func(t *testing.T, dir string) {
			evil := dir + "-evil"
			writeFiles(t, map[string]string{
				filepath.Join(evil, "cert.pem"):    certPEM,
				filepath.Join(evil, "chain.pem"):   "",
				filepath.Join(evil, "privkey.pem"): keyPEM,
				filepath.Join(dir, "renewal", "z.test.conf"): "server = https://ca.test/dir\n[renewalparams]\n" +
					"cert = " + filepath.Join(evil, "cert.pem") + "\nchain = " + filepath.Join(evil, "chain.pem") +
					"\nprivkey = " + filepath.Join(evil, "privkey.pem") + "\n",
			})
		}, []string{"renewal/z.test.conf", "outside"}},
		{"acme.sh Le_API with ..", "acme.sh", func(t *testing.T, dir string) {
			// ca/ca.test/../../../evil is dir/../evil: an account outside.
			_, acctKey := ti.leaf(t, "account")
			writeFiles(t, map[string]string{
				filepath.Join(filepath.Dir(dir), "evil", "account.key"): acctKey,
				filepath.Join(filepath.Dir(dir), "evil", "ca.conf"):     "ACCOUNT_URL='https://ca.test/acct/evil'\n",
			})
			acmesh(t, dir, "https://ca.test/../../../evil", nil)
		}, []string{"z.test/z.test.conf", "Le_API", ".."}},
		{"JWK d longer than the curve", "certbot", func(t *testing.T, dir string) {
			acct := filepath.Join(dir, "accounts", "ca.test", "dir", "0123")
			writeFiles(t, map[string]string{
				filepath.Join(acct, "regr.json"): `{"body": {}, "uri": "https://ca.test/acct/1"}`,
				filepath.Join(acct, "private_key.json"): `{"kty": "EC", "crv": "P-256", "d": "` +
					base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0x7f}, 40)) + `"}`,
			})
		}, []string{"private_key.json", `"d"`, "P-256"}},
		{"key file over 1 MiB", "acme.sh", func(t *testing.T, dir string) {
			acmesh(t, dir, "https://ca.test/dir", func(f string) {
				writeFiles(t, map[string]string{f: keyPEM + strings.Repeat("#", 2<<20)})
			})
		}, []string{"z.test/z.test.key", "1 MiB"}},
		{"oversized private key", "acme.sh", func(t *testing.T, dir string) {
			acmesh(t, dir, "https://ca.test/dir", func(f string) {
				writeFiles(t, map[string]string{f: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: make([]byte, 64<<10)}))})
			})
		}, []string{"z.test/z.test.key", "larger than"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			r, hung := ckBounded(t, 30*time.Second, "import", "--from", tt.tool, "--dry-run", "--ca-roots", ti.rootFile,
				"--storage", filepath.Join(base, "storage"), dir)
			if hung {
				t.Fatalf("import did not finish within 30 s\n%s%s", r.stdout, r.stderr)
			}
			out := r.stdout + r.stderr
			if r.code != 1 || strings.Contains(out, "panic") || strings.Contains(out, "fatal error") {
				t.Errorf("exit %d, want 1 and no panic\n%s", r.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q\n%s", w, out)
				}
			}
			if strings.Contains(out, "would import") {
				t.Errorf("something would be imported\n%s", out)
			}
		})
	}
}
