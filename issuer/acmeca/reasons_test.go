package acmeca_test

import (
	"testing"

	"github.com/certkeeper/certkeeper/issuer/acmeca"
)

func TestRevocationReason(t *testing.T) {
	for reason, want := range map[string]struct {
		code int
		name string
	}{
		"unspecified": {0, "unspecified"}, "keyCompromise": {1, "keyCompromise"}, "superseded": {4, "superseded"},
		"cessationOfOperation": {5, "cessationOfOperation"},
		"keycompromise":        {1, "keyCompromise"}, "AffiliationChanged": {3, "affiliationChanged"}, // certbot's spelling
		"key-compromise": {1, "keyCompromise"}, "Key Compromise": {1, "keyCompromise"}, "cessation_of_operation": {5, "cessationOfOperation"},
		"1": {1, "keyCompromise"}, "0": {0, "unspecified"}, "5": {5, "cessationOfOperation"}, // lego's codes
	} {
		if code, name, ok := acmeca.RevocationReason(reason); !ok || code != want.code || name != want.name {
			t.Errorf("RevocationReason(%q) = %d, %q, %v; want %d, %q", reason, code, name, ok, want.code, want.name)
		}
	}
	for _, reason := range []string{"cACompromise", "2", "6", "-1", "", "key-compromised", "-"} {
		if _, _, ok := acmeca.RevocationReason(reason); ok {
			t.Errorf("RevocationReason(%q) accepted a reason a subscriber may not give", reason)
		}
	}
	const want = "affiliationChanged, cessationOfOperation, keyCompromise, superseded, unspecified"
	if got := acmeca.RevocationReasons(); got != want {
		t.Errorf("RevocationReasons() = %q, want %q", got, want)
	}
}
