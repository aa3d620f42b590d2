package winservice

import (
	"path/filepath"
	"testing"
)

func TestLogFile(t *testing.T) {
	got := LogFile(filepath.FromSlash("/data"), "proxy")
	if want := filepath.FromSlash("/data/certkeeper/proxy.log"); got != want {
		t.Errorf("LogFile = %q, want %q", got, want)
	}
}
