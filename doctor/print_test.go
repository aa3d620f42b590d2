package doctor

import (
	"strings"
	"testing"
)

// TestWrite: the text and JSON forms of "certkeeper doctor", and the
// count of failures that decides its exit status.
func TestWrite(t *testing.T) {
	results := []Result{
		{Check: "dns", Status: OK, Detail: "a.test resolves"},
		{Check: "caa", Status: Fail, Detail: "CAA forbids the CA", Fix: "add a CAA record"},
	}
	var b strings.Builder
	if err := Write(&b, results, false); err != nil {
		t.Fatal(err)
	}
	want := "ok    dns: a.test resolves\nFAIL  caa: CAA forbids the CA\n      fix: add a CAA record\n"
	if b.String() != want {
		t.Errorf("text = %q, want %q", b.String(), want)
	}
	b.Reset()
	if err := Write(&b, results, true); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "[\n  {\n    \"check\": \"dns\",") {
		t.Errorf("JSON = %q", b.String())
	}
	if n := Failures(results); n != 1 {
		t.Errorf("Failures = %d, want 1", n)
	}
}
