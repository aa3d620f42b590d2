//go:build unix

package certkeeper_test

import (
	"crypto/tls"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/policy"
)

// TestHungStorageFailsFast: with Redis hung (stopped, its port still
// accepting), a handshake for a new name fails once loading it times out,
// rather than going on to wait for an issue lock the same Redis cannot
// give (a trial measured 14 s, and a log line blaming another process for
// holding the lock); known names are still served from memory.
func TestHungStorageFailsFast(t *testing.T) {
	rs, st := redisStorage(t)
	var logs testsvc.Buffer
	m := localManager(t, st, policy.Allowlist("a.test", "new.test"))
	m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"}); err != nil {
		t.Fatal(err)
	}
	if err := rs.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Thaw() })
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"}); err != nil {
		t.Errorf("a name in memory, Redis hung: %v", err)
	}
	start := time.Now()
	_, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "new.test"})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "loading new.test from storage") || took > 10*time.Second {
		t.Errorf("a new name, Redis hung: %v after %s; want the load's error, within 10 s (two 2 s reads and their retry)", err, took.Round(time.Millisecond))
	}
	if strings.Contains(logs.String(), "waiting for the issue lock") {
		t.Errorf("the log blames a lock holder for a storage that does not answer:\n%s", logs.String())
	}
	t.Logf("new name with Redis hung: %v after %s", err, took.Round(time.Millisecond))
}
