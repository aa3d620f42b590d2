package migrate

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestZZReplay(t *testing.T) {
	for _, f := range []string{"/tmp/fuzzcur-30581", "/tmp/fuzzcur-30582"} {
		data, _ := os.ReadFile(f)
		tool, contents := data[0], data[1:]
		i := int(tool) % len(Tools())
		t.Logf("%s: tool %s", f, Tools()[i])
		dir := t.TempDir()
		parts := bytes.Split(contents, []byte{0})
		for j, rel := range fuzzLayouts[i] {
			if j >= len(parts) {
				break
			}
			p := filepath.Join(dir, filepath.FromSlash(rel))
			os.MkdirAll(filepath.Dir(p), 0o700)
			os.WriteFile(p, parts[j], 0o600)
			t.Logf("%s: %q", rel, parts[j][:min(len(parts[j]), 200)])
		}
		s, err := Read(Tools()[i], dir, Options{})
		t.Log(s, err)
	}
}
