package acmeca_test

import (
	"bytes"
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
