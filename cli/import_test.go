package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// treeSum maps every file under dir (symlinks as their target) to a hash
// of its content and mode, to show a source was not modified.
func treeSum(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			m[rel] = "-> " + target
		case info.IsDir():
			m[rel] = "dir " + info.Mode().String()
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			m[rel] = info.Mode().String() + " " + hex.EncodeToString(sum[:]) + " " + info.ModTime().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s changed: %q → %q", what, k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: %s appeared", what, k)
		}
	}
}

// leafOf parses the first certificate of a PEM file.
func leafOf(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// takeover is what every import test checks, whatever the tool: import,
// trusting the roots Pebble issues under (--chain-roots), stores the tool's
// certificate for name and its account; importing again
// changes nothing; the source is untouched; the proxy serves the tool's
// certificate (wantSerial) with no new order; and a forced renewal by
// certkeeper orders from the tool's account (wantAccount) and sends ARI
// replaces, with no new account at the CA.
func takeover(t *testing.T, ca *testca.CA, tool, src, name, wantSerial, wantAccount string, extra ...string) {
	t.Helper()
	storageDir := t.TempDir()
	before := treeSum(t, src)
	args := append([]string{"import", "--from", tool, "--storage", storageDir, "--chain-roots", issuingRootsFile(t, ca)}, extra...)

	dry := ck(t, time.Minute, append(args, "--dry-run", src)...)
	if dry.code != 0 || !strings.Contains(dry.stdout, "would import") || !strings.Contains(dry.stdout, name) {
		t.Fatalf("import --dry-run: exit %d\n%s%s", dry.code, dry.stdout, dry.stderr)
	}
	if got := files(t, storageDir); len(got) != 0 {
		t.Errorf("--dry-run stored %d files", len(got))
	}
	r := ck(t, time.Minute, append(args, src)...)
	if r.code != 0 {
		t.Fatalf("import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"account", "certificate"} {
		// The RESULT column is as wide as its widest ("not carried over").
		if !regexp.MustCompile(`(?m)^imported +` + want + " ").MatchString(r.stdout) {
			t.Errorf("import output lacks an imported %s:\n%s", want, r.stdout)
		}
	}
	stored := files(t, storageDir)
	again := ck(t, time.Minute, append(args, src)...)
	if again.code != 0 || strings.Contains(again.stdout, "imported ") {
		t.Errorf("second import: exit %d, want everything unchanged\n%s%s", again.code, again.stdout, again.stderr)
	}
	sameTree(t, "storage after a second import", stored, files(t, storageDir))
	sameTree(t, tool+"'s directory", before, treeSum(t, src))

	st := filestore.New(storageDir)
	key, err := storage.CertificateKey(storage.IssuerID(ca.DirectoryURL()), name)
	if err != nil {
		t.Fatal(err)
	}
	data, err := st.Load(t.Context(), key)
	if err != nil {
		t.Fatalf("imported certificate not at %s: %v", key, err)
	}
	rec, err := storage.UnmarshalCertificate(key, data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Account != wantAccount {
		t.Errorf("imported certificate's account = %q, want %q", rec.Account, wantAccount)
	}

	// Served at once, with no new order.
	orders, accounts := ca.Orders(), ca.Accounts()
	port := testsvc.FreePort(t)
	backend := newBackend(t, "ok")
	proxy := startProxy(t, "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", storageDir,
		"--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--backend", backend.url)
	if got := serialOf(t, port, name, ca.IssuingRootPool(t)); got != wantSerial {
		t.Errorf("proxy serves serial %s for %s, want %s's %s", got, name, tool, wantSerial)
	}
	if n := ca.Orders(); n != orders {
		t.Errorf("the proxy placed %d orders, want 0", n-orders)
	}
	_ = proxy.Process.Kill()
	_ = proxy.Wait()

	// A forced renewal by certkeeper: the imported account, ARI replaces.
	out := t.TempDir()
	if _, err := certfile.Dir(out).Write(name, rec.KeyPEM, rec.ChainPEM); err != nil {
		t.Fatal(err)
	}
	replaced := ca.Replacements()
	renew := pebbleArgs(ca, storageDir, out)
	renew[1] = "renew"
	if r := ck(t, time.Minute, append(renew, "--force")...); r.code != 0 || !strings.Contains(r.stdout, "renewed") {
		t.Fatalf("cert renew --force: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := ca.Accounts(); n != accounts {
		t.Errorf("the renewal registered %d new accounts, want 0 (%s's account)", n-accounts, tool)
	}
	if n := ca.Replacements(); n != replaced+1 {
		t.Errorf("Pebble accepted %d replacements, want 1", n-replaced)
	}
	if data, err = st.Load(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if rec, err = storage.UnmarshalCertificate(key, data); err != nil {
		t.Fatal(err)
	}
	if rec.Account != wantAccount {
		t.Errorf("renewed by account %q, want %s's %q", rec.Account, tool, wantAccount)
	}
	if leaf, _ := rec.Leaf(); leaf == nil || leaf.SerialNumber.String() == wantSerial {
		t.Errorf("storage still holds the imported certificate after the renewal")
	}
}

// accountURI reads the account URL from a JSON file holding it as "uri"
// (certbot's regr.json).
func accountURI(t *testing.T, file string) string {
	t.Helper()
	var regr struct {
		URI string `json:"uri"`
	}
	if err := json.Unmarshal(mustRead(t, file), &regr); err != nil || regr.URI == "" {
		t.Fatalf("%s: no account URL (%v)", file, err)
	}
	return regr.URI
}

// TestImportCertbot: a certificate obtained by the real certbot from
// Pebble is taken over; a truncated key is reported and skipped.
func TestImportCertbot(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	cfg := runCertbot(t, ca, "cb.test", "www.cb.test")
	serial := leafOf(t, filepath.Join(cfg, "live", "cb.test", "cert.pem")).SerialNumber.String()
	regrs, _ := filepath.Glob(filepath.Join(cfg, "accounts", "*", "*", "*", "regr.json"))
	if len(regrs) != 1 {
		t.Fatalf("certbot accounts: %v", regrs)
	}
	takeover(t, ca, "certbot", cfg, "cb.test", serial, accountURI(t, regrs[0]))

	// Certificate files, as certbot's users have them: a want list writes
	// the imported certificate from storage (no order), and the renewal
	// after it orders from certbot's account (no new one registered, and
	// not refused as another account's replacement; takeover's proxy may
	// have replaced this serial already).
	storageDir, out := t.TempDir(), t.TempDir()
	if r := ck(t, time.Minute, "import", "--from", "certbot", "--storage", storageDir, "--chain-roots", issuingRootsFile(t, ca), cfg); r.code != 0 {
		t.Fatalf("import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := filepath.Join(t.TempDir(), "want.txt")
	if err := os.WriteFile(want, []byte("cb.test www.cb.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	orders, accounts := ca.Orders(), ca.Accounts()
	renew := func(extra ...string) result {
		args := append(pebbleArgs(ca, storageDir, out), extra...)
		args[1] = "renew" // cert issue's flags, cert renew's command
		return ck(t, time.Minute, args...)
	}
	r := renew("--want", want)
	if r.code != 0 || !strings.Contains(r.stdout, "written") {
		t.Fatalf("cert renew --want: exit %d, want cb.test written from storage\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := leafOf(t, filepath.Join(out, "certs", "cb.test.pem")).SerialNumber.String(); got != serial || ca.Orders() != orders {
		t.Errorf("the files hold serial %s (certbot's: %s), %d orders placed; want certbot's certificate and no order", got, serial, ca.Orders()-orders)
	}
	r = renew("--force")
	if r.code != 0 || !strings.Contains(r.stdout, "renewed") || strings.Contains(r.stderr, "did not request the certificate being replaced") || ca.Accounts() != accounts {
		t.Errorf("renewing the imported certificate: exit %d, %d accounts registered; want it renewed from certbot's account\n%s%s",
			r.code, ca.Accounts()-accounts, r.stdout, r.stderr)
	}
}

// TestImportDamaged: a truncated key in certbot's state is reported, with
// the entry it belongs to, and skipped: no certificate is stored for it,
// while the rest (the account) is imported.
func TestImportDamaged(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	cfg := filepath.Join(t.TempDir(), "letsencrypt")
	if out, err := exec.Command("cp", "-a", runCertbot(t, ca, "dmg.test"), cfg).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	keyFile := filepath.Join(cfg, "archive", "dmg.test", "privkey1.pem")
	key := mustRead(t, keyFile)
	if err := os.WriteFile(keyFile, key[:len(key)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	storageDir := t.TempDir()
	for _, dry := range []bool{true, false} {
		args := []string{"import", "--from", "certbot", "--storage", storageDir, "--chain-roots", issuingRootsFile(t, ca), cfg}
		if dry {
			args = append(args[:len(args)-1], "--dry-run", cfg)
		}
		r := ck(t, time.Minute, args...)
		if r.code != 1 || !strings.Contains(r.stdout, "skipped") || !strings.Contains(r.stdout, "renewal/dmg.test.conf") ||
			!strings.Contains(r.stdout, "private key") || !strings.Contains(r.stderr, "1 of 2 entries could not be imported") {
			t.Errorf("dry-run %v: exit %d, want 1 naming the damaged entry and why\n%s%s", dry, r.code, r.stdout, r.stderr)
		}
	}
	if certs, _ := filepath.Glob(filepath.Join(storageDir, "certificates", "*", "*")); len(certs) != 0 {
		t.Errorf("a damaged entry was stored: %v", certs)
	}
	if accts, _ := filepath.Glob(filepath.Join(storageDir, "accounts", "*", "default.json")); len(accts) != 1 {
		t.Errorf("the account was not imported beside the damaged certificate: %v", accts)
	}
}

// TestImportLego: the real lego, which records only the CA's host, with
// --ca naming the directory.
func TestImportLego(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := runLego(t, ca, "l@lego.test", "lego.test")
	serial := leafOf(t, filepath.Join(dir, "certificates", "lego.test.crt")).SerialNumber.String()
	accts, _ := filepath.Glob(filepath.Join(dir, "accounts", "*", "l@lego.test", "account.json"))
	if len(accts) != 1 {
		t.Fatalf("lego accounts: %v", accts)
	}
	var rec struct {
		Registration struct {
			URI string `json:"uri"`
		} `json:"registration"`
	}
	if err := json.Unmarshal(mustRead(t, accts[0]), &rec); err != nil {
		t.Fatal(err)
	}
	// lego records the CA's host, not its directory URL: without --ca,
	// nothing can be tied to a CA, and the dry run says so.
	r := ck(t, time.Minute, "import", "--from", "lego", "--dry-run", "--storage", t.TempDir(), dir)
	if r.code != 1 || strings.Count(r.stdout, "give --ca URL") != 2 {
		t.Errorf("lego without --ca: exit %d, want 1 and both entries asking for --ca\n%s%s", r.code, r.stdout, r.stderr)
	}
	takeover(t, ca, "lego", dir, "lego.test", serial, rec.Registration.URI, "--ca", ca.DirectoryURL())
}

// TestImportDehydrated: the real dehydrated, its CA read from the name of
// its account directory.
func TestImportDehydrated(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := runDehydrated(t, ca, "d@dh.test", "dh.test")
	serial := leafOf(t, filepath.Join(dir, "certs", "dh.test", "cert.pem")).SerialNumber.String()
	ids, _ := filepath.Glob(filepath.Join(dir, "accounts", "*", "account_id.json"))
	if len(ids) != 1 {
		t.Fatalf("dehydrated accounts: %v", ids)
	}
	var id struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(mustRead(t, ids[0]), &id); err != nil {
		t.Fatal(err)
	}
	takeover(t, ca, "dehydrated", dir, "dh.test", serial, id.URL)
}

// TestImportCaddy: a storage written by a real CertMagic.
func TestImportCaddy(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := runCertMagic(t, ca, "c@cm.test", "cm.test")
	crts, _ := filepath.Glob(filepath.Join(dir, "certificates", "*", "cm.test", "cm.test.crt"))
	users, _ := filepath.Glob(filepath.Join(dir, "acme", "*", "users", "c@cm.test", "*.json"))
	if len(crts) != 1 || len(users) != 1 {
		t.Fatalf("CertMagic storage: certificates %v, users %v", crts, users)
	}
	var user struct {
		Location string `json:"location"`
	}
	if err := json.Unmarshal(mustRead(t, users[0]), &user); err != nil {
		t.Fatal(err)
	}
	takeover(t, ca, "caddy", dir, "cm.test", leafOf(t, crts[0]).SerialNumber.String(), user.Location)
}

// TestImportACMESH: acme.sh, which Debian does not ship, from a fixture
// laid out as acme.sh writes its home (~/.acme.sh): the certificate, its
// key and the account come from Pebble (obtained here by certkeeper), the
// files and their shell-variable configurations as acme.sh documents them.
func TestImportACMESH(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	made, out := t.TempDir(), t.TempDir()
	if r := ck(t, time.Minute, append(pebbleArgs(ca, made, out), "--email", "a@ash.test", "-d", "ash.test")...); r.code != 0 {
		t.Fatalf("cert issue: %s", r.stderr)
	}
	certs := readPair(t, out, "ash.test")
	id := storage.IssuerID(ca.DirectoryURL())
	var acct struct {
		Location string `json:"location"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(made, "accounts", id, "a@ash.test.json")), &acct); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), ".acme.sh")
	// acme.sh keeps an account per CA in ca/HOST/PATH (HOST without port).
	caDir := filepath.Join(home, "ca", "127.0.0.1", "dir")
	certDir := filepath.Join(home, "ash.test_ecc")
	fixture := map[string]string{
		filepath.Join(home, "account.conf"):  "LOG_FILE='" + home + "/acme.sh.log'\nACCOUNT_EMAIL='a@ash.test'\nUPGRADE_HASH='0'\n",
		filepath.Join(caDir, "account.key"):  sec1PEM(t, filepath.Join(made, "accounts", id, "a@ash.test.key")),
		filepath.Join(caDir, "account.json"): `{"status":"valid","contact":["mailto:a@ash.test"]}`,
		filepath.Join(caDir, "ca.conf"):      "CA_EMAIL='a@ash.test'\nACCOUNT_URL='" + acct.Location + "'\nCA_KEY_HASH='x'\nACCOUNT_THUMBPRINT='y'\n",
		filepath.Join(certDir, "ash.test.conf"): "Le_Domain='ash.test'\nLe_Alt='no'\nLe_Webroot='/var/www/html'\nLe_PreHook=''\n" +
			"Le_PostHook=''\nLe_RenewHook=''\nLe_API='" + ca.DirectoryURL() + "'\nLe_Keylength='ec-256'\nLe_OrderFinalize='x'\n" +
			"Le_LinkOrder='x'\nLe_LinkCert='https://example.invalid/cert'\nLe_CertCreateTime='1700000000'\nLe_NextRenewTime='1705000000'\n",
		filepath.Join(certDir, "ash.test.cer"):     certsPEM(certs[0]),
		filepath.Join(certDir, "ca.cer"):           certsPEM(certs[1:]...),
		filepath.Join(certDir, "fullchain.cer"):    certsPEM(certs...),
		filepath.Join(certDir, "ash.test.key"):     sec1PEM(t, filepath.Join(out, "private", "ash.test.key")),
		filepath.Join(certDir, "ash.test.csr"):     "",
		filepath.Join(home, "acme.sh.env"):         "export LE_WORKING_DIR=\"" + home + "\"\n",
		filepath.Join(home, "deploy", "ssh.sh"):    "#!/usr/bin/env sh\n",
		filepath.Join(home, "dnsapi", "dns_cf.sh"): "#!/usr/bin/env sh\n",
	}
	writeFiles(t, fixture)
	takeover(t, ca, "acme.sh", home, "ash.test", certs[0].SerialNumber.String(), acct.Location)
}

// sec1PEM reads an EC private key and returns it as the "EC PRIVATE KEY"
// PEM acme.sh writes.
func sec1PEM(t *testing.T, file string) string {
	t.Helper()
	k, err := storage.ParsePrivateKeyPEM(mustRead(t, file))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// certsPEM encodes certificates as PEM, in order.
func certsPEM(cs ...*x509.Certificate) string {
	var s string
	for _, c := range cs {
		s += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return s
}

// writeFiles writes each file of m (path → content), creating directories.
func writeFiles(t *testing.T, m map[string]string) {
	t.Helper()
	for f, content := range m {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// acmeshCertDir writes an acme.sh certificate folder for name in home
// (NAME_ecc/, as acme.sh lays it out) with chain (leaf first) and keyPEM,
// its Le_API the directory URL dirURL.
func acmeshCertDir(t *testing.T, home, name, dirURL string, chain []*x509.Certificate, keyPEM string) {
	t.Helper()
	dir := filepath.Join(home, name+"_ecc")
	writeFiles(t, map[string]string{
		filepath.Join(dir, name+".conf"): "Le_Domain='" + name + "'\nLe_Alt='no'\nLe_Webroot='/var/www/html'\nLe_API='" + dirURL +
			"'\nLe_Keylength='ec-256'\nLe_LinkCert='https://example.invalid/cert'\n",
		filepath.Join(dir, name+".cer"):     certsPEM(chain[0]),
		filepath.Join(dir, "ca.cer"):        certsPEM(chain[1:]...),
		filepath.Join(dir, "fullchain.cer"): certsPEM(chain...),
		filepath.Join(dir, name+".key"):     keyPEM,
	})
}

// issuingRootsFile writes the roots Pebble issues under to a PEM file, for
// import --chain-roots.
func issuingRootsFile(t *testing.T, ca *testca.CA) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pebble-roots.pem")
	if err := os.WriteFile(f, []byte(certsPEM(ca.IssuingRoots(t)...)), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// storedSerial returns the serial of the certificate stored for name under
// ca's issuer in the file storage dir.
func storedSerial(t *testing.T, dir string, ca *testca.CA, name string) string {
	t.Helper()
	key, err := storage.CertificateKey(storage.IssuerID(ca.DirectoryURL()), name)
	if err != nil {
		t.Fatal(err)
	}
	data, err := filestore.New(dir).Load(t.Context(), key)
	if err != nil {
		t.Fatalf("no certificate stored for %s: %v", name, err)
	}
	rec, err := storage.UnmarshalCertificate(key, data)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := rec.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.String()
}

// TestImportForged (security): a crafted acme.sh folder with a self-signed
// certificate valid 20,000 days for a name certkeeper holds a valid
// certificate for is refused, naming the file and why, with or without
// --chain-roots; the stored certificate stays. A genuine certificate from the
// CA for that name does not replace the stored one either, unless
// --overwrite is given; --dry-run --overwrite says what would be replaced.
func TestImportForged(t *testing.T) {
	const name = "fg.test"
	ca := testca.Start(t, testca.Options{})
	st, out := t.TempDir(), t.TempDir()
	if r := ck(t, time.Minute, append(pebbleArgs(ca, st, out), "-d", name)...); r.code != 0 {
		t.Fatalf("cert issue: %s", r.stderr)
	}
	stored := readPair(t, out, name)[0].SerialNumber.String()
	roots := issuingRootsFile(t, ca)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(20000 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	forgedHome := filepath.Join(t.TempDir(), ".acme.sh")
	acmeshCertDir(t, forgedHome, name, ca.DirectoryURL(), []*x509.Certificate{forged},
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})))
	for _, extra := range [][]string{nil, {"--chain-roots", roots}, {"--ca-roots", roots, "--overwrite"}} {
		args := append(append([]string{"import", "--from", "acme.sh", "--storage", st}, extra...), forgedHome)
		r := ck(t, time.Minute, args...)
		if r.code != 1 || !strings.Contains(r.stdout, filepath.Join(name+"_ecc", name+".cer")) ||
			!strings.Contains(r.stdout, "does not verify") {
			t.Errorf("import of a forged certificate (%s): exit %d, want 1 naming %s_ecc/%s.cer and why\n%s%s",
				strings.Join(extra, " "), r.code, name, name, r.stdout, r.stderr)
		}
		if got := storedSerial(t, st, ca, name); got != stored {
			t.Fatalf("the forged certificate (serial %s) replaced the stored one (%s)", got, stored)
		}
	}

	// A genuine, newer certificate for the name from the same CA.
	st2, out2 := t.TempDir(), t.TempDir()
	if r := ck(t, time.Minute, append(pebbleArgs(ca, st2, out2), "-d", name)...); r.code != 0 {
		t.Fatalf("cert issue: %s", r.stderr)
	}
	newer := readPair(t, out2, name)
	home := filepath.Join(t.TempDir(), ".acme.sh")
	acmeshCertDir(t, home, name, ca.DirectoryURL(), newer, sec1PEM(t, filepath.Join(out2, "private", name+".key")))
	args := []string{"import", "--from", "acme.sh", "--storage", st, "--chain-roots", roots}
	r := ck(t, time.Minute, append(args, home)...)
	if r.code != 0 || !strings.Contains(r.stdout, "kept") || !strings.Contains(r.stdout, "--overwrite") {
		t.Errorf("import over a stored certificate: exit %d, want 0, kept, naming --overwrite\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := storedSerial(t, st, ca, name); got != stored {
		t.Fatalf("import without --overwrite replaced the stored certificate (%s) by %s", stored, got)
	}
	certKey, _ := storage.CertificateKey(storage.IssuerID(ca.DirectoryURL()), name)
	r = ck(t, time.Minute, append(args, "--dry-run", "--overwrite", home)...)
	if r.code != 0 || !strings.Contains(r.stdout, "would replace") || !strings.Contains(r.stdout, certKey) {
		t.Errorf("import --dry-run --overwrite: exit %d, want 0 and \"would replace\" naming %s\n%s%s", r.code, certKey, r.stdout, r.stderr)
	}
	if got := storedSerial(t, st, ca, name); got != stored {
		t.Fatalf("import --dry-run replaced the stored certificate")
	}
	r = ck(t, time.Minute, append(args, "--overwrite", home)...)
	if r.code != 0 || !strings.Contains(r.stdout, "replaced") {
		t.Errorf("import --overwrite: exit %d, want 0 and replaced\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got, want := storedSerial(t, st, ca, name), newer[0].SerialNumber.String(); got != want {
		t.Errorf("after import --overwrite the stored certificate is %s, want %s", got, want)
	}
}

// TestImportLocalCARoot: with no --chain-roots, a chain to the root of the
// local CA that --storage holds verifies; without that storage it does not.
func TestImportLocalCARoot(t *testing.T) {
	st, out := t.TempDir(), t.TempDir()
	if r := ck(t, time.Minute, "cert", "issue", "--ca", "local", "--storage", st, "--out-dir", out, "-d", "lc.test"); r.code != 0 {
		t.Fatalf("cert issue --ca local: exit %d\n%s", r.code, r.stderr)
	}
	home := filepath.Join(t.TempDir(), ".acme.sh")
	acmeshCertDir(t, home, "lc.test", "https://ca.test/dir", readPair(t, out, "lc.test"), sec1PEM(t, filepath.Join(out, "private", "lc.test.key")))
	if r := ck(t, time.Minute, "import", "--from", "acme.sh", "--dry-run", "--storage", st, home); r.code != 0 || !strings.Contains(r.stdout, "would import") {
		t.Errorf("import into the storage of the local CA: exit %d, want 0, would import\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := ck(t, time.Minute, "import", "--from", "acme.sh", "--dry-run", "--storage", t.TempDir(), home); r.code != 1 || !strings.Contains(r.stdout, "does not verify") {
		t.Errorf("import into another storage: exit %d, want 1, does not verify\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestImportToolAsArgument: "import certbot DIR", as one says it, is
// "import --from certbot DIR" (it was refused: "give the tool's
// directory"); an empty DIR prints no empty table, only that nothing was
// found; certbot's live/ says to give the directory above it; a misspelt
// tool exits 2.
func TestImportToolAsArgument(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"import", "certbot", dir}, {"import", "--from", "certbot", dir}, {"import", "certbot", dir, "--from", "certbot"}} {
		r := ck(t, 30*time.Second, append(args, "--storage", filepath.Join(t.TempDir(), "st"))...)
		if w := "found no certificates or accounts of certbot in " + dir; r.code != 1 || !strings.Contains(r.stderr, w) || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q; want 1, no stdout and %q\nstderr:\n%s", args, r.code, r.stdout, w, r.stderr)
		}
	}
	r := ck(t, 30*time.Second, "import", "lego", dir, "--from", "certbot")
	if r.code != 2 {
		t.Errorf("import lego DIR --from certbot: exit %d, want 2 (two tools)\n%s", r.code, r.stderr)
	}
	// A misspelt tool is bad usage (it exited 1).
	if r := ck(t, 30*time.Second, "import", "--from", "certbott", dir); r.code != 2 || !strings.Contains(r.stderr, `unknown tool "certbott": use one of certbot`) {
		t.Errorf("import --from certbott: exit %d, want 2 naming the tools\n%s", r.code, r.stderr)
	}
	// certbot's live/ folder instead of its configuration directory.
	live := filepath.Join(dir, "live")
	if err := os.MkdirAll(filepath.Join(live, "a.test"), 0o700); err != nil {
		t.Fatal(err)
	}
	r = ck(t, 30*time.Second, "import", "--from", "certbot", "--storage", filepath.Join(t.TempDir(), "st"), live)
	if w := "give that directory, which holds renewal/ and accounts/: certkeeper import --from certbot " + dir; r.code != 1 || !strings.Contains(r.stderr, w) {
		t.Errorf("import --from certbot DIR/live: exit %d, want 1 and %q\n%s", r.code, w, r.stderr)
	}
}

// TestImportCertbotLineages: the real certbot, asked for another set of
// names with the same first name, makes a second lineage (cx.test-0001
// beside cx.test); certkeeper stores one certificate per CA and first
// name. The import and its dry run agree: the newer lineage is imported,
// the other skipped naming both renewal files, the name only it covers and
// how to get it, and the exit status is 1 (it was "kept ... valid as long
// or longer", exit 0, and "would import" in the dry run). certbot's deploy
// hook, authenticator and renewal-hooks/ script are each reported as not
// carried over, with the cert renew flag to give instead.
func TestImportCertbotLineages(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	certbot := func(names ...string) {
		t.Helper()
		args := []string{"certonly", "--standalone", "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
			"--server", ca.DirectoryURL(), "--config-dir", cfg, "--work-dir", filepath.Join(dir, "work"),
			"--logs-dir", filepath.Join(dir, "logs"), "--http-01-port", strconv.Itoa(ca.HTTPPort()), "--http-01-address", "127.0.0.1",
			"--deploy-hook", "systemctl reload nginx"}
		for _, n := range names {
			args = append(args, "-d", n)
		}
		runTool(t, []string{"REQUESTS_CA_BUNDLE=" + ca.ListenerRootFile()}, "certbot", args...)
	}
	certbot("cx.test", "www.cx.test")
	certbot("cx.test", "new.cx.test")
	if _, err := os.Stat(filepath.Join(cfg, "renewal", "cx.test-0001.conf")); err != nil {
		t.Fatalf("certbot made no second lineage: %v", err)
	}
	reload := filepath.Join(cfg, "renewal-hooks", "deploy", "reload.sh")
	if err := os.MkdirAll(filepath.Dir(reload), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reload, []byte("#!/bin/sh\nsystemctl reload nginx\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	storageDir := t.TempDir()
	args := []string{"import", "--from", "certbot", "--storage", storageDir, "--chain-roots", issuingRootsFile(t, ca)}
	dry := ck(t, time.Minute, append(args, "--dry-run", cfg)...)
	r := ck(t, time.Minute, append(args, cfg)...)
	for _, run := range []struct {
		name string
		r    result
	}{{"dry run", dry}, {"import", r}} {
		for _, want := range []string{
			"renewal/cx.test-0001.conf and renewal/cx.test.conf both have first name cx.test",
			"www.cx.test, which only this one covers, is then covered by no certificate: get one with certkeeper cert issue --ca " +
				ca.DirectoryURL() + " -d www.cx.test",
			"renew_hook = systemctl reload nginx → cert renew -d cx.test --deploy-hook 'systemctl reload nginx'",
			"authenticator = standalone, http01_port = ",
			"reload.sh (certbot runs it after each renewal) → cert renew --deploy-hook " + reload,
		} {
			if !strings.Contains(run.r.stdout, want) {
				t.Errorf("%s: output lacks %q", run.name, want)
			}
		}
		if !regexp.MustCompile(`(?m)^skipped +certificate +cx\.test,www\.cx\.test +renewal/cx\.test\.conf `).MatchString(run.r.stdout) {
			t.Errorf("%s: no line says renewal/cx.test.conf was skipped", run.name)
		}
		if run.r.code != 1 || !strings.Contains(run.r.stderr, "1 of 3 entries could not be imported") {
			t.Errorf("%s: exit %d, want 1 and 1 of 3 entries (an account, two certificates) not imported\n%s", run.name, run.r.code, run.r.stderr)
		}
	}
	if got := strings.ReplaceAll(dry.stdout, "would import", "imported    "); got != r.stdout {
		t.Errorf("the dry run did not predict the import:\n%s\nimport:\n%s", dry.stdout, r.stdout)
	}
	key, _ := storage.CertificateKey(storage.IssuerID(ca.DirectoryURL()), "cx.test")
	data, err := filestore.New(storageDir).Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := storage.UnmarshalCertificate(key, data); err != nil || strings.Join(rec.Names, ",") != "cx.test,new.cx.test" {
		t.Errorf("stored for cx.test: %v, %v; want cx.test-0001's cx.test,new.cx.test", rec, err)
	}
	if t.Failed() {
		t.Logf("import:\n%s%s", r.stdout, r.stderr)
	}
}
