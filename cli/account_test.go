package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/mholt/acmez/v3/acme"
)

// TestAccountLifecycle: register (terms shown, then accepted), show,
// update contacts, key rollover (the old key is refused by the CA and the
// new one orders), recover from the key alone, deactivate (no more orders).
func TestAccountLifecycle(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	base := func(cmd ...string) []string {
		return append(append([]string{"account"}, cmd...), "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(),
			"--storage", dir, "--email", "ops@a.test")
	}
	if r := ck(t, 30*time.Second, base("register")...); r.code != 1 || !strings.Contains(r.stderr, "--agree-tos") {
		t.Fatalf("register without --agree-tos: exit %d\n%s", r.code, r.stderr)
	}
	if ca.Accounts() != 0 {
		t.Fatal("an account was registered without --agree-tos")
	}
	reg := ck(t, 30*time.Second, append(base("register"), "--agree-tos")...)
	if reg.code != 0 || !strings.Contains(reg.stdout, "url:") {
		t.Fatalf("register: exit %d\n%s%s", reg.code, reg.stdout, reg.stderr)
	}
	url := field(reg.stdout, "url:")
	if show := ck(t, 30*time.Second, base("show")...); field(show.stdout, "url:") != url || field(show.stdout, "status:") != "valid" {
		t.Errorf("show:\n%s%s", show.stdout, show.stderr)
	}
	upd := ck(t, 30*time.Second, append(base("update"), "-m", "a@a.test", "--contact", "b@a.test")...) // certbot's update_account -m
	if upd.code != 0 || !strings.Contains(upd.stdout, "mailto:a@a.test") || !strings.Contains(upd.stdout, "mailto:b@a.test") {
		t.Errorf("update:\n%s%s", upd.stdout, upd.stderr)
	}

	// Without --email: show names the stored account, and cert issue
	// orders with it (certbot's register, then certonly) instead of
	// registering a second account beside it.
	noEmail := base("show")[:len(base("show"))-2]
	if r := ck(t, 30*time.Second, noEmail...); r.code != 1 || !strings.Contains(r.stderr, "holds 1 account there: ops@a.test; give --email ops@a.test") {
		t.Errorf("show without --email: exit %d\n%s", r.code, r.stderr)
	}
	if r := ck(t, time.Minute, append(pebbleArgs(ca, dir, t.TempDir()), "-d", "sole.a.test")...); r.code != 0 || ca.Accounts() != 1 {
		t.Errorf("cert issue without --email: exit %d, %d accounts at the CA, want the registered one\n%s", r.code, ca.Accounts(), r.stderr)
	}

	keyFile := filepath.Join(dir, "accounts", storage.IssuerID(ca.DirectoryURL()), "ops@a.test.key")
	oldPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if r := ck(t, 30*time.Second, base("rollover")...); r.code != 0 {
		t.Fatalf("rollover: exit %d\n%s", r.code, r.stderr)
	}
	oldKey, _ := storage.ParsePrivateKeyPEM(oldPEM)
	client := &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient()}
	if _, err := client.GetAccount(t.Context(), acme.Account{PrivateKey: oldKey}); err == nil {
		t.Error("the CA still knows the account by its old key after rollover")
	}
	out := t.TempDir()
	issueArgs := append(pebbleArgs(ca, dir, out), "--email", "ops@a.test", "-d", "k.test")
	if r := ck(t, time.Minute, issueArgs...); r.code != 0 {
		t.Fatalf("ordering with the new key: exit %d\n%s", r.code, r.stderr)
	}

	// The record lost, the key alone finds the account.
	os.Remove(filepath.Join(dir, "accounts", storage.IssuerID(ca.DirectoryURL()), "ops@a.test.json"))
	if rec := ck(t, 30*time.Second, base("recover")...); field(rec.stdout, "url:") != url {
		t.Errorf("recover: got %q, want %q\n%s", field(rec.stdout, "url:"), url, rec.stderr)
	}

	if r := ck(t, 30*time.Second, append(base("deactivate"), "--yes")...); r.code != 0 {
		t.Fatalf("deactivate: exit %d\n%s", r.code, r.stderr)
	}
	orders := ca.Orders()
	if r := ck(t, time.Minute, append(pebbleArgs(ca, dir, t.TempDir()), "--email", "ops@a.test", "-d", "d.test")...); r.code == 0 {
		t.Error("a deactivated account ordered a certificate")
	}
	if ca.Orders() != orders {
		t.Error("an order was placed with a deactivated account")
	}
	// What to do names the flag and the files, not Issuer.Email and storage keys.
	accounts := filepath.Join(dir, "accounts", storage.IssuerID(ca.DirectoryURL()))
	if r := ck(t, time.Minute, append(pebbleArgs(ca, dir, t.TempDir()), "--email", "ops@a.test", "-d", "d.test")...); strings.Contains(r.stderr, "Email") ||
		!strings.Contains(r.stderr, "remove "+filepath.Join(accounts, "ops@a.test.json")+" and "+filepath.Join(accounts, "ops@a.test.key")) ||
		!strings.Contains(r.stderr, "use another --email") {
		t.Errorf("ordering with a deactivated account: exit %d, want the flag and the files to remove named\n%s", r.code, r.stderr)
	}
	// Several accounts to choose from: none is singled out.
	if r := ck(t, 30*time.Second, "account", "register", "--agree-tos", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", dir, "--email", "dev@a.test"); r.code != 0 {
		t.Fatalf("registering a second account: exit %d\n%s", r.code, r.stderr)
	}
	show := ck(t, 30*time.Second, "account", "show", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", dir, "--email", "nobody@a.test")
	if !strings.Contains(show.stderr, "holds 2 accounts there: ") || !strings.Contains(show.stderr, "; give --email with one of them") {
		t.Errorf("show --email of no account, with two stored: exit %d\n%s", show.code, show.stderr)
	}
	// The CA agrees: the account is deactivated.
	newKey, _ := storage.ParsePrivateKeyPEM(mustRead(t, keyFile))
	_, err = client.GetAccount(t.Context(), acme.Account{PrivateKey: newKey})
	var p acme.Problem
	if err == nil || !errors.As(err, &p) {
		t.Errorf("GetAccount of a deactivated account: %v", err)
	}
}

func field(out, name string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func mustRead(t *testing.T, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRolloverSealed: with encryption at rest, the previous account key a
// rollover keeps (.key.old) is sealed like the account key, not stored in
// clear beside it.
func TestRolloverSealed(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "storage.key")
	if err := os.WriteFile(keyFile, []byte(ck(t, 30*time.Second, "storage", "keygen").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(cmd ...string) []string {
		return append(append([]string{"account"}, cmd...), "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(),
			"--storage", dir, "--storage-key-file", keyFile, "--email", "ops@a.test")
	}
	if r := ck(t, 30*time.Second, append(base("register"), "--agree-tos")...); r.code != 0 {
		t.Fatalf("register: exit %d\n%s", r.code, r.stderr)
	}
	if r := ck(t, 30*time.Second, base("rollover")...); r.code != 0 {
		t.Fatalf("rollover: exit %d\n%s", r.code, r.stderr)
	}
	accounts := filepath.Join(dir, "accounts", storage.IssuerID(ca.DirectoryURL()))
	for _, name := range []string{"ops@a.test.key", "ops@a.test.key.old"} {
		data, err := os.ReadFile(filepath.Join(accounts, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "PRIVATE KEY") {
			t.Errorf("%s is stored in clear in an encrypted storage", name)
		}
	}
}
