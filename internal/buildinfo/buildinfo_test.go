package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	if got := Version("v1.2.3"); got != "v1.2.3" {
		t.Errorf("Version(v1.2.3) = %q, want the stamped version", got)
	}
	if got := Version(""); got == "" || got == "(devel)" {
		t.Errorf("Version(\"\") = %q, want a version, devel or devel-REVISION", got)
	}
	want := "certkeeper v1.2.3 (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if got := String("v1.2.3"); got != want {
		t.Errorf("String(v1.2.3) = %q, want %q", got, want)
	}
	if got := String(""); !strings.HasPrefix(got, "certkeeper ") {
		t.Errorf("String(\"\") = %q", got)
	}
}
