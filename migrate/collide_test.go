package migrate

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// localIssued returns a State trusting a new local CA, and a func that
// adds to it a certificate of that CA for names (the first is the tool's
// primary name), read from source, whose NotAfter it then moves by shift.
func localIssued(t *testing.T, dirURL string) (*State, func(source string, shift time.Duration, names ...string)) {
	t.Helper()
	st := mapStore{}
	local := &localca.CA{Storage: st}
	root, err := local.Root(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s := &State{roots: x509.NewCertPool()}
	s.roots.AddCert(root)
	return s, func(source string, shift time.Duration, names ...string) {
		t.Helper()
		chainPEM, keyPEM := issueLocal(t, local, names...)
		n := len(s.Certificates)
		s.addCertificate(Certificate{DirectoryURL: dirURL, ChainPEM: chainPEM, Source: source}, names[0],
			keyPEM, source+"/cert.pem", source+"/privkey.pem")
		if len(s.Certificates) != n+1 {
			t.Fatalf("%s: not added: %v", source, s.Problems)
		}
		s.Certificates[n].Leaf.NotAfter = s.Certificates[n].Leaf.NotAfter.Add(shift)
	}
}

// issueLocal issues a certificate for names from local and returns its
// chain and key.
func issueLocal(t *testing.T, local *localca.CA, names ...string) (chainPEM, keyPEM []byte) {
	t.Helper()
	got, err := certkeeper.Issue(t.Context(), mapStore{}, certkeeper.IssueRequest{
		Names: names, Issuers: &issuer.Chain{Issuers: []issuer.Issuer{local}}})
	if err != nil {
		t.Fatal(err)
	}
	return got.Certificate.ChainPEM, got.Record.KeyPEM
}

// TestImportCollision: certbot's lineages a.test and a.test-0001 have the
// same first name, so certkeeper can store one. The one valid longer is
// imported; the other is skipped, naming both renewal files, the names
// only it covers and how to get them, in the dry run as in the real run,
// and the import fails (Outcome). A lineage whose names another one covers
// is superseded, which is no failure. Certificates of another CA do not
// collide.
func TestImportCollision(t *testing.T) {
	const dirURL = "https://ca.test/dir"
	s, add := localIssued(t, dirURL)
	add("renewal/a.test.conf", 0, "a.test", "www.a.test")
	add("renewal/a.test-0001.conf", time.Hour, "a.test", "new.a.test")
	add("renewal/a.test-0002.conf", 2*time.Hour, "a.test")
	add("renewal/b.test.conf", 0, "b.test")
	other, addOther := localIssued(t, "https://other.test/dir")
	addOther("renewal/a.test-0003.conf", 0, "a.test", "www.a.test")
	s.Certificates = append(s.Certificates, other.Certificates...)

	st := filestore.New(t.TempDir())
	var runs [2][]Action
	for i, dry := range []bool{true, false} {
		acts, err := Import(t.Context(), st, s, ImportOptions{DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = acts
		imported := WouldImport
		if !dry {
			imported = Imported
		}
		if got, want := results(acts), "certificate:skipped certificate:"+imported+" certificate:superseded certificate:"+imported+
			" certificate:"+imported; got != want {
			t.Fatalf("dry run %v: %s, want %s", dry, got, want)
		}
		why := acts[0].Why
		for _, w := range []string{"renewal/a.test-0001.conf and renewal/a.test.conf both have first name a.test",
			"www.a.test, which only this one covers", "cert issue --ca " + dirURL + " -d www.a.test", "proxy", "valid longer"} {
			if !strings.Contains(why, w) {
				t.Errorf("dry run %v: why of the dropped lineage lacks %q:\n%s", dry, w, why)
			}
		}
		if w := "renewal/a.test-0001.conf is imported instead, as it covers these names too"; !strings.Contains(acts[2].Why, w) {
			t.Errorf("dry run %v: superseded why lacks %q:\n%s", dry, w, acts[2].Why)
		}
		if err := Outcome(Certbot, "/etc/letsencrypt", acts); err == nil || err.Error() != "1 of 5 entries could not be imported (see above)" {
			t.Errorf("dry run %v: Outcome = %v", dry, err)
		}
	}
	for i := range runs[0] {
		if runs[0][i].Why != runs[1][i].Why || runs[0][i].Source != runs[1][i].Source {
			t.Errorf("the dry run said %+v, the import %+v", runs[0][i], runs[1][i])
		}
	}
	key, _ := storage.CertificateKey(storage.IssuerID(dirURL), "a.test")
	data, err := st.Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if rec, _ := storage.UnmarshalCertificate(key, data); rec == nil || strings.Join(rec.Names, ",") != "a.test,new.a.test" {
		t.Errorf("stored for a.test: %v, want a.test-0001's a.test,new.a.test", rec)
	}
	// Again: the one imported is unchanged, the dropped one still reported.
	acts, err := Import(t.Context(), st, s, ImportOptions{})
	if err != nil || results(acts) != "certificate:skipped certificate:unchanged certificate:superseded certificate:unchanged certificate:unchanged" {
		t.Errorf("second import: %s, %v", results(acts), err)
	}
}

// TestCollisionsChoice: which of certificates with the same first name is
// imported.
func TestCollisionsChoice(t *testing.T) {
	s, add := localIssued(t, "https://ca.test/dir")
	add("same-1", 0, "c.test", "x.c.test")
	add("same-2", 0, "c.test", "y.c.test")
	add("more", 0, "d.test", "x.d.test", "y.d.test")
	add("fewer", time.Hour, "d.test", "z.d.test")
	add("expired", -48*time.Hour*365, "e.test", "x.e.test")
	add("live", 0, "e.test")
	got := collisions(s.Certificates, time.Now())
	want := map[string]string{"same-2": "same-1", "more": "fewer"}
	if len(got) != len(want) {
		t.Errorf("collisions = %v, want %d", got, len(want))
	}
	for i, c := range got {
		if w := s.Certificates[c.winner].Source; want[s.Certificates[i].Source] != w {
			t.Errorf("%s dropped for %s, want for %q", s.Certificates[i].Source, w, want[s.Certificates[i].Source])
		}
	}
	if why := collisionAction(s.Certificates[1], s.Certificates[0], "k").Why; !strings.Contains(why, "read first") {
		t.Errorf("equal certificates: why = %s", why)
	}
}

// TestImportKeptOtherNames: a certificate kept because storage holds one
// for its first name valid as long says which of its names the stored
// one does not cover (it said only "valid as long or longer").
func TestImportKeptOtherNames(t *testing.T) {
	st := filestore.New(t.TempDir())
	s, add := localIssued(t, "https://ca.test/dir")
	add("renewal/a.test-0001.conf", time.Hour, "a.test", "new.a.test")
	if _, err := Import(t.Context(), st, s, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Certificates = nil
	add("renewal/a.test.conf", 0, "a.test", "www.a.test")
	acts, err := Import(t.Context(), st, s, ImportOptions{})
	if err != nil || len(acts) != 1 || acts[0].Result != Kept ||
		!strings.Contains(acts[0].Why, "(a.test,new.a.test, ") || !strings.Contains(acts[0].Why, "but not for www.a.test, which this one covers") {
		t.Errorf("Import = %+v, %v", acts, err)
	}
}

// TestCollisionSettingsNotListed: the settings not carried over are
// listed for the lineage imported, with -d naming it, not again for the
// one skipped in its favour (whose list had no -d, so it read as advice
// for every certificate).
func TestCollisionSettingsNotListed(t *testing.T) {
	s, add := localIssued(t, "https://ca.test/dir")
	add("renewal/q.test.conf", 0, "q.test")
	add("renewal/q.test-0001.conf", time.Hour, "q.test")
	for i := range s.Certificates {
		s.Certificates[i].Settings = []Setting{{Source: s.Certificates[i].Source, Setting: "renew_hook = systemctl reload nginx",
			Instead: "cert renew --deploy-hook 'systemctl reload nginx'"}}
	}
	acts, err := Import(t.Context(), filestore.New(t.TempDir()), s, ImportOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var settings []string
	for _, a := range acts {
		if a.Kind == "setting" {
			settings = append(settings, a.Source+": "+a.Why)
		}
	}
	if len(settings) != 1 || !strings.Contains(settings[0], "renewal/q.test-0001.conf: ") || !strings.Contains(settings[0], "cert renew -d q.test --deploy-hook") {
		t.Errorf("settings listed: %q; want the imported lineage's alone, with -d q.test", settings)
	}
}
