package certserver_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/certserver"
)

// TestReloadTokenFile: each case of a SIGHUP's token file is logged, and
// only a usable file named at start is read again.
func TestReloadTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("first-token-0123456789\n# revoked-token-0123456789\nsecond-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ started, next, want string }{
		{"", "", ""},
		{"", file, "token_file was added: it takes a restart"},
		{file, "", "token_file was removed: keeping the tokens read before"},
		{file, file, "msg=\"token file reloaded\" file=" + file + " tokens=2"}, // how many it holds now
		{file, file + ".gone", "reloading the token file failed"},
	} {
		var logs bytes.Buffer
		h := &certserver.Handler{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		h.ReloadTokenFile(c.started, c.next)
		if c.want == "" && logs.Len() > 0 || !strings.Contains(logs.String(), c.want) {
			t.Errorf("ReloadTokenFile(%q, %q) logged %q, want %q", c.started, c.next, logs.String(), c.want)
		}
	}
}

// TestAuditAttach: Attach sets the Handler's Audit, and its AuditErr
// unless the log fails open; StderrAudit marks its lines log=audit.
func TestAuditAttach(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		af, err := certserver.OpenAuditFile(filepath.Join(t.TempDir(), "audit.log"), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		h := &certserver.Handler{}
		closeAudit := af.Attach(h, failOpen)
		if h.Audit != af.Logger || (h.AuditErr == nil) != failOpen {
			t.Errorf("Attach(failOpen %v): Audit set %v, AuditErr set %v", failOpen, h.Audit == af.Logger, h.AuditErr != nil)
		}
		closeAudit()
	}
	var b bytes.Buffer
	certserver.StderrAudit(&b, false).Info("key handed out")
	if !strings.Contains(b.String(), "log=audit") {
		t.Errorf("StderrAudit wrote %q, want log=audit", b.String())
	}
}
