package main

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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

// takeover is what every import test checks, whatever the tool: import
// stores the tool's certificate for name and its account; importing again
// changes nothing; the source is untouched; the proxy serves the tool's
// certificate (wantSerial) with no new order; and a forced renewal by
// certkeeper orders from the tool's account (wantAccount) and sends ARI
// replaces, with no new account at the CA.
func takeover(t *testing.T, ca *testca.CA, tool, src, name, wantSerial, wantAccount string, extra ...string) {
	t.Helper()
	storageDir := t.TempDir()
	before := treeSum(t, src)
	args := append([]string{"import", "--from", tool, "--storage", storageDir}, extra...)

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
	for _, want := range []string{"imported  account", "imported  certificate"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("import output lacks %q:\n%s", want, r.stdout)
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
		args := []string{"import", "--from", "certbot", "--storage", storageDir, cfg}
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
	sec1 := func(file string) string {
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
	pemOf := func(cs ...*x509.Certificate) string {
		var s string
		for _, c := range cs {
			s += string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
		}
		return s
	}
	home := filepath.Join(t.TempDir(), ".acme.sh")
	// acme.sh keeps an account per CA in ca/HOST/PATH (HOST without port).
	caDir := filepath.Join(home, "ca", "127.0.0.1", "dir")
	certDir := filepath.Join(home, "ash.test_ecc")
	fixture := map[string]string{
		filepath.Join(home, "account.conf"):  "LOG_FILE='" + home + "/acme.sh.log'\nACCOUNT_EMAIL='a@ash.test'\nUPGRADE_HASH='0'\n",
		filepath.Join(caDir, "account.key"):  sec1(filepath.Join(made, "accounts", id, "a@ash.test.key")),
		filepath.Join(caDir, "account.json"): `{"status":"valid","contact":["mailto:a@ash.test"]}`,
		filepath.Join(caDir, "ca.conf"):      "CA_EMAIL='a@ash.test'\nACCOUNT_URL='" + acct.Location + "'\nCA_KEY_HASH='x'\nACCOUNT_THUMBPRINT='y'\n",
		filepath.Join(certDir, "ash.test.conf"): "Le_Domain='ash.test'\nLe_Alt='no'\nLe_Webroot='/var/www/html'\nLe_PreHook=''\n" +
			"Le_PostHook=''\nLe_RenewHook=''\nLe_API='" + ca.DirectoryURL() + "'\nLe_Keylength='ec-256'\nLe_OrderFinalize='x'\n" +
			"Le_LinkOrder='x'\nLe_LinkCert='https://example.invalid/cert'\nLe_CertCreateTime='1700000000'\nLe_NextRenewTime='1705000000'\n",
		filepath.Join(certDir, "ash.test.cer"):     pemOf(certs[0]),
		filepath.Join(certDir, "ca.cer"):           pemOf(certs[1:]...),
		filepath.Join(certDir, "fullchain.cer"):    pemOf(certs...),
		filepath.Join(certDir, "ash.test.key"):     sec1(filepath.Join(out, "private", "ash.test.key")),
		filepath.Join(certDir, "ash.test.csr"):     "",
		filepath.Join(home, "acme.sh.env"):         "export LE_WORKING_DIR=\"" + home + "\"\n",
		filepath.Join(home, "deploy", "ssh.sh"):    "#!/usr/bin/env sh\n",
		filepath.Join(home, "dnsapi", "dns_cf.sh"): "#!/usr/bin/env sh\n",
	}
	for f, content := range fixture {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	takeover(t, ca, "acme.sh", home, "ash.test", certs[0].SerialNumber.String(), acct.Location)
}
