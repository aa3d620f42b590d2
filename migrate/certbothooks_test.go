package migrate

import (
	"crypto/x509"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestCertbotSettings: the hooks and authenticators of certbot's renewal
// configurations, and the scripts in renewal-hooks/, are reported per
// certificate (and once for the tree) with the certkeeper flag to give
// instead, after the certificate's line of the import's table; they do
// not count as entries, so the import still succeeds. The last line says
// to stop certbot's own timer, which would go on renewing the same names.
func TestCertbotSettings(t *testing.T) {
	const dir = "/etc/letsencrypt"
	st := mapStore{}
	local := &localca.CA{Storage: st}
	root, err := local.Root(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	fsys := fstest.MapFS{}
	lineage := func(name, params string) {
		chain, key := issueLocal(t, local, name, "www."+name)
		fsys["live/"+name+"/cert.pem"] = &fstest.MapFile{Data: chain}
		fsys["live/"+name+"/privkey.pem"] = &fstest.MapFile{Data: key}
		fsys["renewal/"+name+".conf"] = &fstest.MapFile{Data: []byte("version = 2.1.0\n" +
			"cert = " + dir + "/live/" + name + "/cert.pem\nprivkey = " + dir + "/live/" + name + "/privkey.pem\n" +
			"\n# Options used in the renewal process\n[renewalparams]\nserver = https://ca.test/dir\nkey_type = ecdsa\n" + params)}
	}
	lineage("a.test", "authenticator = webroot\nwebroot_path = /var/www/html,\nrenew_hook = systemctl reload nginx\n"+
		"pre_hook = \"echo 'it''s'\"  # configobj quotes it\npost_hook = touch /tmp/done\ninstaller = nginx # an inline comment\n[[webroot_map]]\na.test = /var/www/html\nwww.a.test = /var/www/html\n")
	lineage("b.test", "authenticator = standalone\nhttp01_port = 8080\nrenew_hook = cp $RENEWED_LINEAGE/fullchain.pem /srv\n")
	lineage("c.test", "authenticator = webroot\nwebroot_path = /srv/c,/srv/www,\n[[webroot_map]]\nc.test = /srv/c\nwww.c.test = /srv/www\n")
	lineage("d.test", "authenticator = dns-cloudflare\ndns_cloudflare_credentials = /root/cf.ini\ninstaller = apache\n")
	lineage("e.test", "authenticator = nginx\ninstaller = nginx\n")
	lineage("f.test", "authenticator = manual\nmanual_auth_hook = /usr/local/bin/auth.sh\n")
	fsys["renewal-hooks/deploy/reload.sh"] = &fstest.MapFile{Data: []byte("#!/bin/sh\ncp $RENEWED_LINEAGE/fullchain.pem /srv # certkeeper gives RENEWED_DOMAINS, not this\n"), Mode: 0o755}
	fsys["renewal-hooks/deploy/README"] = &fstest.MapFile{Data: []byte("not run: not executable\n"), Mode: 0o644}
	fsys["renewal-hooks/pre/a.sh"] = &fstest.MapFile{Data: []byte("#!/bin/sh\n"), Mode: 0o755}
	fsys["renewal-hooks/pre/b b.sh"] = &fstest.MapFile{Data: []byte("#!/bin/sh\n"), Mode: 0o700}
	fsys["renewal-hooks/post/.keep"] = &fstest.MapFile{Data: []byte(""), Mode: 0o644}

	s, err := read(Certbot, dir, fsys, Options{Roots: roots})
	if err != nil || len(s.Certificates) != 6 {
		t.Fatalf("read: %d certificates, %v, problems %v", len(s.Certificates), err, s.Problems)
	}
	acts, err := Import(t.Context(), filestore.New(t.TempDir()), s, ImportOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteActions(&b, acts); err != nil {
		t.Fatal(err)
	}
	table := b.String()
	for _, want := range []string{
		"renewal/a.test.conf    renew_hook = systemctl reload nginx → cert renew -d a.test --deploy-hook 'systemctl reload nginx'\n",
		"pre_hook = echo 'it''s' → cert renew -d a.test --pre-hook 'echo '\\''it'\\'''\\''s'\\'''\n",
		"post_hook = touch /tmp/done → cert renew -d a.test --post-hook 'touch /tmp/done'\n",
		"authenticator = webroot, webroot_path = /var/www/html → cert renew -d a.test --webroot /var/www/html\n",
		"installer = nginx → cert renew -d a.test --deploy-hook 'systemctl reload nginx' (certbot's plugin reloaded nginx",
		"authenticator = standalone, http01_port = 8080 → cert renew -d b.test --http-addr :8080",
		"renew_hook = cp $RENEWED_LINEAGE/fullchain.pem /srv → cert renew -d b.test --deploy-hook 'cp $RENEWED_LINEAGE/fullchain.pem /srv' (it reads certbot's RENEWED_LINEAGE",
		"webroot_map: c.test = /srv/c, www.c.test = /srv/www → cert renew -d c.test --webroot DIR takes one directory, certbot used 2",
		"authenticator = dns-cloudflare → cert renew -d d.test --challenge dns-01 --dns PROVIDER",
		"installer = apache → cert renew -d d.test --deploy-hook 'systemctl reload apache2'",
		"authenticator = nginx → cert renew -d e.test --webroot DIR, DIR the document root nginx serves",
		"authenticator = manual, manual_auth_hook = /usr/local/bin/auth.sh → cert renew -d f.test --challenge dns-01 --dns exec",
		"-                  renewal-hooks/deploy/  reload.sh (certbot runs it after each renewal) → cert renew --deploy-hook /etc/letsencrypt/renewal-hooks/deploy/reload.sh for every certificate (it reads certbot's RENEWED_LINEAGE",
		// certbot's own timer goes on renewing until stopped (trial 29).
		"-                  renewal/               certbot renews these certificates itself, twice a day (certbot.timer; /etc/cron.d/certbot without systemd; " +
			"snap.certbot.renew.timer for the snap) → stop it once certkeeper renews them, or both order the same names: systemctl disable --now certbot.timer, and remove /etc/cron.d/certbot\n",
		"renewal-hooks/pre/     a.sh, b b.sh (certbot runs them before renewing) → cert renew --pre-hook '/etc/letsencrypt/renewal-hooks/pre/a.sh; '\\''/etc/letsencrypt/renewal-hooks/pre/b b.sh'\\''' for every certificate\n",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	for _, not := range []string{"README", "renewal-hooks/post", "key_type"} {
		if strings.Contains(table, not) {
			t.Errorf("table mentions %q", not)
		}
	}
	// Each certificate's settings follow its line.
	if i, j := strings.Index(table, "would import      certificate  b.test"), strings.Index(table, "http01_port"); i < 0 || j < i {
		t.Errorf("b.test's settings do not follow its line:\n%s", table)
	}
	if err := Outcome(Certbot, dir, acts); err != nil {
		t.Errorf("Outcome = %v, want none: settings not carried over are notes\n%s", err, table)
	}
	if t.Failed() {
		t.Logf("table:\n%s", table)
	}
}

// TestCertbotSettingsQuoted: a renewal configuration's values reach the
// suggested commands quoted, and an installer that is no plugin name
// makes no command: pasted, a suggestion ran what a planted
// http01_address or installer held (a security trial; import itself
// runs nothing).
func TestCertbotSettingsQuoted(t *testing.T) {
	got := certbotSettings("renewal/x.conf", map[string]string{"authenticator": "standalone", "http01_port": "8080",
		"http01_address": "127.0.0.1;touch${IFS}/tmp/pwned;", "installer": "nginx$(touch /tmp/pwned)"}, nil)
	var text strings.Builder
	for _, s := range got {
		text.WriteString(s.Instead + "\n")
	}
	for _, want := range []string{"--http-addr '127.0.0.1;touch${IFS}/tmp/pwned;:8080'", "--deploy-hook 'systemctl reload SERVICE'"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("suggestions lack %q:\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String(), "reload nginx$(") {
		t.Errorf("the installer's value became a command:\n%s", text.String())
	}
}
