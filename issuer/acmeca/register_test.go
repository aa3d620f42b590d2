package acmeca_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
)

func TestRegister(t *testing.T) {
	e := newEnv(t, testca.Options{})
	iss := e.issuer(acmeca.HTTP01)
	iss.AgreeTerms = func(string) bool { return false }
	if _, tos, err := iss.Register(t.Context(), nil); err == nil || tos == "" {
		t.Fatalf("Register refusing the terms = tos %q, err %v; want the terms URL and an error", tos, err)
	}
	iss.AgreeTerms = func(string) bool { return true }
	acct, tos, err := iss.Register(t.Context(), []string{"ops@a.test", "oncall@a.test"})
	if err != nil || tos == "" {
		t.Fatalf("Register = tos %q, err %v", tos, err)
	}
	if len(acct.Contact) != 2 || acct.Location == "" {
		t.Errorf("account = %+v, want two contacts", acct)
	}
	if _, tos, err := iss.Register(t.Context(), nil); err != nil || tos != "" {
		t.Errorf("Register again = tos %q, err %v; want the stored account, no terms shown", tos, err)
	}
	var b bytes.Buffer
	acmeca.WriteAccount(&b, acct)
	for _, want := range []string{"url:        " + acct.Location, "status:     valid", "contacts:   mailto:ops@a.test, mailto:oncall@a.test", "key type:   ecdsa-p256"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("WriteAccount wrote\n%s\nwithout %q", b.String(), want)
		}
	}
}

// TestCheckEmail: an address passes, and so does none; what a CA would
// refuse as a contact (or that would make a wrong mailto: URL) does not.
func TestCheckEmail(t *testing.T) {
	for _, ok := range []string{"", "you@a.example", "ops+certs@a.example", "o.p@sub.a.example"} {
		if err := acmeca.CheckEmail(ok); err != nil {
			t.Errorf("CheckEmail(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"notanemail", "mailto:you@a.example", "Ops <ops@a.example>", "a@b.example, c@d.example", "you@", "@a.example", " you@a.example"} {
		if err := acmeca.CheckEmail(bad); !errors.Is(err, acmeca.ErrInvalidEmail) || !strings.Contains(err.Error(), "you@a.example") {
			t.Errorf("CheckEmail(%q) = %v, want ErrInvalidEmail with an example", bad, err)
		}
	}
}

// TestRegisterStoredDeactivatedElsewhere: Register of an account storage
// holds asks the CA for its status: one deactivated by another client
// (certbot unregister, then its files imported) is an error, not the
// stored record's "valid" (a migration trial's account register printed
// status: valid, then every renewal got 403).
func TestRegisterStoredDeactivatedElsewhere(t *testing.T) {
	e := newEnv(t, testca.Options{})
	iss := e.issuer(acmeca.HTTP01)
	if _, _, err := iss.Register(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	keys, err := e.storage.List(t.Context(), "accounts/")
	if err != nil || len(keys) == 0 {
		t.Fatalf("stored account keys: %v, %v", keys, err)
	}
	saved := map[string][]byte{}
	for _, k := range keys {
		if saved[k], err = e.storage.Load(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	if err := iss.Deactivate(t.Context()); err != nil {
		t.Fatal(err)
	}
	for k, v := range saved { // the files as they were before: "valid"
		if err := e.storage.Store(t.Context(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	acct, _, err := e.issuer(acmeca.HTTP01).Register(t.Context(), nil)
	if err == nil {
		t.Errorf("Register of an account the CA deactivated = %s, nil; want the CA's refusal", acct.Status)
	}
}
