package cli

import (
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/cmdline"
)

// TestOtherToolsDocumented: docs/cli.md's "Coming from certbot or lego"
// table names every spelling otherTools accepts, and each is registered
// on at least one command (its flag exists there).
func TestOtherToolsDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start := strings.Index(doc, "## Coming from certbot or lego")
	if start < 0 {
		t.Fatal(`docs/cli.md has no "Coming from certbot or lego" section`)
	}
	section := doc[start:]
	section = section[:strings.Index(section[2:], "\n## ")+2]
	registered := map[string]bool{}
	for _, c := range leafCommands() {
		fs := c.FlagSet(globalFlags)
		for _, s := range otherTools {
			if f := fs.Lookup(s.Name); f != nil && cmdline.SpellingOf(f) != "" {
				registered[s.Name] = true
			}
		}
	}
	for _, s := range otherTools {
		if !strings.Contains(section, "`"+cmdline.FlagName(s.Name)) {
			t.Errorf("docs/cli.md's certbot and lego table does not list %s", cmdline.FlagName(s.Name))
		}
		if !registered[s.Name] {
			t.Errorf("%s (%s) is registered on no command: no command has %s", cmdline.FlagName(s.Name), s.Tool, cmdline.FlagName(s.To))
		}
	}
}

// TestOtherToolsSpellings runs cert issue as a certbot user types it, on
// the local CA: the certificate is issued with the settings the spellings
// name, and each spelling is answered with its note.
func TestOtherToolsSpellings(t *testing.T) {
	out := t.TempDir()
	r := ck(t, 30*time.Second, "cert", "issue", "--server", "local", "--standalone", "--domains", "localhost,x.localhost", // certbot's comma list
		"-m", "you@a.test", "--agree-tos", "-n", "--rsa-key-size", "2048", "--out-dir", out, "--storage", t.TempDir())
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"certkeeper: --server is certbot's and lego's spelling of --ca\n",
		"certkeeper: --standalone is certbot's spelling of --challenge http-01\n",
		"certkeeper: --domains is certbot's and lego's spelling of -d\n",
		"certkeeper: -m is certbot's and lego's spelling of --email\n",
		"certkeeper: --agree-tos (certbot) is not needed: certkeeper never prompts",
		"certkeeper: -n (certbot) is not needed: certkeeper never prompts\n",
		"certkeeper: --rsa-key-size is certbot's spelling of --key-type\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	certs := readPair(t, out, "localhost")
	if got := certs[0].DNSNames; !slices.Equal(got, []string{"localhost", "x.localhost"}) {
		t.Errorf("--domains localhost,x.localhost issued for %q, want both names", got)
	}
	if got := certs[0].PublicKeyAlgorithm.String(); got != "RSA" || !strings.Contains(r.stdout, "issued localhost,x.localhost by local") {
		t.Errorf("issued with a %s key, stdout %q; want an RSA key from the local CA", got, r.stdout)
	}
	conf, err := os.ReadFile(filepath.Join(out, "renewal", "localhost.conf"))
	if err != nil || !strings.Contains(string(conf), "key_type = rsa2048\n") || !strings.Contains(string(conf), "ca = local\n") {
		t.Errorf("renewal settings do not record what the spellings set (%v):\n%s", err, conf)
	}
	// certbot's ECDSA P-384, as its docs write it.
	out = t.TempDir()
	r = ck(t, 30*time.Second, "cert", "issue", "--server", "local", "-d", "localhost", "--key-type", "ecdsa",
		"--elliptic-curve", "secp384r1", "--out-dir", out, "--storage", t.TempDir())
	if r.code != 0 || !strings.Contains(r.stderr, "--elliptic-curve is certbot's spelling of --key-type") {
		t.Fatalf("--elliptic-curve: exit %d\n%s", r.code, r.stderr)
	}
	if k, ok := readPair(t, out, "localhost")[0].PublicKey.(*ecdsa.PublicKey); !ok || k.Curve.Params().Name != "P-384" {
		t.Errorf("--key-type ecdsa --elliptic-curve secp384r1 issued a %T key, want ECDSA P-384", readPair(t, out, "localhost")[0].PublicKey)
	}
	// lego's --days N is --grace Nd; a value that is not a number is
	// quoted as typed.
	if r := ck(t, 30*time.Second, "cert", "renew", "--days", "abc", "--out-dir", out, "--storage", t.TempDir()); r.code != 2 ||
		!strings.Contains(r.stderr, `--grace: "abc" is not a duration`) {
		t.Errorf("--days abc: exit %d, want 2 and the value as typed\n%s", r.code, r.stderr)
	}
}

// TestOtherToolsCommands: certbot's and lego's command names, and a
// command given without its group, are refused with certkeeper's.
func TestOtherToolsCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"certonly", "-d", "a.test"}, `did you mean "certkeeper cert issue" (certbot's certonly)?`},
		{[]string{"certificates"}, `did you mean "certkeeper status" (certbot's certificates)?`},
		{[]string{"unregister"}, `did you mean "certkeeper account deactivate" (certbot's unregister)?`},
		{[]string{"renew"}, `did you mean "certkeeper cert renew"?`},
		{[]string{"export"}, `did you mean "certkeeper storage export"?`},
		{[]string{"show_account"}, `did you mean "certkeeper account show" (certbot's show_account)?`},
		{[]string{"delete", "--cert-name", "a.test"}, `did you mean "certkeeper cert delete" or "certkeeper storage delete"?`},
		{[]string{"cert", "remove", "a.test"}, `did you mean "certkeeper cert delete"?`}, // not revoke, the nearest spelling
	} {
		r := ck(t, 30*time.Second, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("certkeeper %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}

// TestAcceptTOS: lego's --accept-tos is --agree-tos on account register,
// which has it, and a spelling that asks for nothing on cert issue.
func TestAcceptTOS(t *testing.T) {
	for _, tc := range []struct {
		cmd  []string
		note string
	}{
		{[]string{"account", "register"}, "--accept-tos is lego's spelling of --agree-tos"},
		{[]string{"cert", "issue"}, "--accept-tos (lego) is not needed"},
	} {
		cmd, words, _, _, err := cmdline.Resolve(root(), append(tc.cmd, "--accept-tos"), globalFlags)
		if err != nil {
			t.Fatal(err)
		}
		fs := cmd.FlagSet(globalFlags)
		var notes strings.Builder
		if _, err := cmdline.Parse(fs, words, cmd.RawArgs, &notes); err != nil || !strings.Contains(notes.String(), tc.note) {
			t.Errorf("%s --accept-tos: %v, notes %q; want %q", cmd.FullName(), err, notes.String(), tc.note)
		}
		if f := fs.Lookup("agree-tos"); f != nil && cmdline.SpellingOf(f) == "" && f.Value.String() != "true" {
			t.Errorf("%s --accept-tos left --agree-tos %s", cmd.FullName(), f.Value)
		}
	}
}
