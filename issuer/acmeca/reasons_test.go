package acmeca_test

import (
	"testing"

	"github.com/certkeeper/certkeeper/issuer/acmeca"
)

func TestRevocationReason(t *testing.T) {
	for name, want := range map[string]int{"unspecified": 0, "keyCompromise": 1, "superseded": 4, "cessationOfOperation": 5} {
		if got, ok := acmeca.RevocationReason(name); !ok || got != want {
			t.Errorf("RevocationReason(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
	for _, name := range []string{"cACompromise", "keycompromise", ""} {
		if _, ok := acmeca.RevocationReason(name); ok {
			t.Errorf("RevocationReason(%q) accepted a reason a subscriber may not give", name)
		}
	}
	const want = "affiliationChanged, cessationOfOperation, keyCompromise, superseded, unspecified"
	if got := acmeca.RevocationReasons(); got != want {
		t.Errorf("RevocationReasons() = %q, want %q", got, want)
	}
}
