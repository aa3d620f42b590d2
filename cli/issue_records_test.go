package cli

import (
	"crypto/tls"
	"net"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestIssuedRecordsEqual issues one name each way — the Manager on demand,
// the Manager's renewal, cert issue and cert renew — into one storage and
// compares the stored records field by field: they all come from
// certkeeper.Issue, so only what belongs to one issuance (chain, key,
// dates, certificate URL, the CA's renewal window and when it is asked
// again), OnDemand (how the name came in) and Files
// (cert issue's and cert renew's copies, which cert renew renews) may
// differ.
func TestIssuedRecordsEqual(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{
		"default": {Description: "90 days", ValidityPeriod: 90 * 24 * time.Hour},
		"short":   {Description: "10 seconds", ValidityPeriod: 10 * time.Second},
	}})
	const name, email = "same.test", "ops@same.test"
	storageDir, out := t.TempDir(), t.TempDir()
	st := filestore.New(storageDir)
	load := func(what string) *storage.Certificate {
		t.Helper()
		key, _ := storage.CertificateKey(storage.IssuerID(ca.DirectoryURL()), name)
		data, err := st.Load(t.Context(), key)
		if err != nil {
			t.Fatalf("%s: no stored record: %v", what, err)
		}
		rec, err := storage.UnmarshalCertificate(key, data)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}

	// The Manager: on demand at a handshake, then its own renewal.
	renewed := make(chan struct{})
	var once sync.Once
	m := &certkeeper.Manager{
		Policy: policy.Allowlist(name), Storage: st, Email: email,
		Issuers: []issuer.Issuer{&acmeca.Issuer{
			DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Email: email,
			Profile: "short", ChallengeOrder: []string{acmeca.TLSALPN01},
		}},
		OnEvent: func(e certkeeper.Event) {
			if e.Kind == certkeeper.Renewed {
				once.Do(func() { close(renewed) })
			}
		},
	}
	ln, err := tls.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.TLSPort())), m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: name, RootCAs: ca.IssuingRootPool(t)})
	if err != nil {
		t.Fatalf("on-demand handshake: %v", err)
	}
	conn.Close()
	records := map[string]*storage.Certificate{"Manager on demand": load("Manager on demand")}
	select {
	case <-renewed:
	case <-time.After(40 * time.Second):
		t.Fatal("the Manager did not renew a 10 s certificate within 40 s")
	}
	records["Manager renewal"] = load("Manager renewal")
	m.Close()
	ln.Close()

	// The CLI, on the same storage (so the same ACME account).
	args := pebbleArgs(ca, storageDir, out)
	for i, a := range args {
		if a == "--profile" {
			args[i+1] = "short"
		}
	}
	args = append(args, "--email", email)
	if r := ck(t, time.Minute, append(args, "-d", name)...); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	records["cert issue"] = load("cert issue")
	args[1] = "renew"
	if r := ck(t, time.Minute, append(args, "--force")...); r.code != 0 {
		t.Fatalf("cert renew: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	records["cert renew"] = load("cert renew")
	if records["cert renew"].URL == records["cert issue"].URL {
		t.Fatal("cert renew --force stored no new certificate")
	}

	want := normalized(t, "cert issue", records["cert issue"])
	for path, rec := range records {
		manager := path == "Manager on demand" || path == "Manager renewal"
		if rec.OnDemand != manager {
			t.Errorf("%s: OnDemand = %v", path, rec.OnDemand)
		}
		if rec.Files == manager { // cert issue's and cert renew's copies are cert renew's to renew
			t.Errorf("%s: Files = %v", path, rec.Files)
		}
		got := normalized(t, path, rec)
		gv, wv := reflect.ValueOf(*got), reflect.ValueOf(*want)
		for i := range gv.NumField() {
			if f := gv.Type().Field(i).Name; !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
				t.Errorf("%s: %s = %v, cert issue stored %v", path, f, gv.Field(i).Interface(), wv.Field(i).Interface())
			}
		}
	}
}

// normalized checks the fields that belong to one issuance are set and
// clears them, leaving what every path must store alike.
func normalized(t *testing.T, path string, rec *storage.Certificate) *storage.Certificate {
	t.Helper()
	c := *rec
	if len(c.ChainPEM) == 0 || len(c.KeyPEM) == 0 || c.URL == "" || c.Obtained.IsZero() || c.RenewalWindow == nil {
		t.Errorf("%s: chain, key, URL, Obtained or the CA's renewal window missing", path)
	}
	if _, err := c.TLSCertificate(); err != nil {
		t.Errorf("%s: %v", path, err)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life > 11*time.Second || life < 9*time.Second {
		t.Errorf("%s: lifetime %s, want the short profile's 10 s", path, life)
	}
	c.ChainPEM, c.KeyPEM, c.URL, c.Obtained, c.NotBefore, c.NotAfter, c.OnDemand, c.Files = nil, nil, "", time.Time{}, time.Time{}, time.Time{}, false, false
	c.RenewalWindow = nil
	return &c
}
