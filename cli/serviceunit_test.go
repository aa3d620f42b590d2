package cli

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServiceUnit: service unit prints each definition of deploy/ as
// shipped, with this binary's path for /usr/local/bin/certkeeper (a
// binary installed with "go install" had no deploy/ to copy: newcomer
// trial); an unknown NAME is bad usage listing the names.
func TestServiceUnit(t *testing.T) {
	exe, err := filepath.EvalSymlinks(binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"certkeeper.service", "certkeeper-renew.service", "certkeeper-renew.timer", "com.certkeeper.proxy.plist"} {
		want := strings.ReplaceAll(string(mustRead(t, filepath.Join("..", "deploy", name))), "/usr/local/bin/certkeeper", exe)
		r := ck(t, 30*time.Second, "service", "unit", name)
		if r.code != 0 || r.stdout != want {
			t.Errorf("service unit %s: exit %d, stdout differs from deploy/%s with this binary's path\n%s", name, r.code, name, r.stderr)
		}
	}
	r := ck(t, 30*time.Second, "service", "unit", "certkeeper")
	if r.code != 2 || !strings.Contains(r.stderr, "certkeeper.service, com.certkeeper.proxy.plist") {
		t.Errorf("service unit certkeeper: exit %d\n%s", r.code, r.stderr)
	}
}
