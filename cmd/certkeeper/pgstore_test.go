package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// writePasswordFile writes pg's password to a 0600 file and returns its
// path.
func writePasswordFile(t *testing.T, pg *testsvc.PostgresServer) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "db.pw")
	if err := os.WriteFile(f, []byte(pg.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestStoragePostgresFlags: the binary on a postgres:// --storage takes the
// password from --storage-password-file, refuses one in the URL without
// printing it, and warns at start about fsync=off naming the setting.
func TestStoragePostgresFlags(t *testing.T) {
	t.Parallel()
	pg := testsvc.PostgresWith(t, testsvc.PostgresOptions{FsyncOff: true})
	pwFile := writePasswordFile(t, pg)
	url := pg.URL("postgres")
	secret := pg.Password()

	inURL := strings.Replace(url, "postgres@", "postgres:"+secret+"@", 1)
	r := ck(t, 30*time.Second, "status", "--storage", inURL)
	if r.code == 0 || !strings.Contains(r.stderr, "holds a password") || !strings.Contains(r.stderr, "--storage-password-file") {
		t.Errorf("status with a password in the URL: exit %d, stderr %q; want a refusal naming --storage-password-file", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("status with a password in the URL printed it: %s%s", r.stdout, r.stderr)
	}

	r = ck(t, 30*time.Second, "status", "--storage", url, "--storage-password-file", filepath.Join(t.TempDir(), "missing"))
	if r.code == 0 || !strings.Contains(r.stderr, "--storage-password-file") {
		t.Errorf("status with a missing password file: exit %d, stderr %q", r.code, r.stderr)
	}

	r = ck(t, 30*time.Second, "status", "--storage", "redis://127.0.0.1:1/0", "--storage-password-file", pwFile)
	if r.code == 0 || !strings.Contains(r.stderr, "postgres://") {
		t.Errorf("status on Redis with --storage-password-file: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}

	wrong := filepath.Join(t.TempDir(), "wrong.pw")
	if err := os.WriteFile(wrong, []byte("Wr0ngSecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = ck(t, 30*time.Second, "status", "--storage", url, "--storage-password-file", wrong)
	if r.code == 0 || !strings.Contains(r.stderr, "PostgreSQL at "+pg.Addr()) || strings.Contains(r.stderr, "Wr0ngSecret") {
		t.Errorf("status with a wrong password: exit %d, stderr %q; want an error naming the server, not the password", r.code, r.stderr)
	}

	r = ck(t, 30*time.Second, "status", "--storage", url, "--storage-password-file", pwFile)
	if r.code != 0 {
		t.Fatalf("status on PostgreSQL: exit %d: %s", r.code, r.stderr)
	}
	t.Logf("status on fsync=off: %s", r.stderr)
	if !strings.Contains(r.stderr, "fsync=off") || !strings.Contains(r.stderr, "WARN") {
		t.Errorf("status on a PostgreSQL with fsync=off: stderr %q; want a warning naming fsync=off", r.stderr)
	}
}

// TestDurabilityWarningRedis: a Redis with neither RDB snapshots nor AOF
// gets a warning naming both settings; one that refuses CONFIG GET gets a
// warning that durability cannot be checked; certkeeper carries on.
func TestDurabilityWarningRedis(t *testing.T) {
	t.Parallel()
	rs := testsvc.Redis(t) // save "" and appendonly no
	url := "redis://" + rs.Addr() + "/0"
	r := ck(t, 30*time.Second, "status", "--storage", url)
	if r.code != 0 || !strings.Contains(r.stderr, `save \"\"`) || !strings.Contains(r.stderr, "appendonly no") {
		t.Errorf("status on a Redis without persistence: exit %d, stderr %q; want a warning naming save and appendonly", r.code, r.stderr)
	}

	c := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Do(ctx, "ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "&*", "+@all", "-config").Err(); err != nil {
		t.Fatal(err)
	}
	r = ck(t, 30*time.Second, "status", "--storage", "redis://noconfig:pw@"+rs.Addr()+"/0")
	if r.code != 0 || !strings.Contains(r.stderr, "durability cannot be checked") {
		t.Errorf("status on a Redis refusing CONFIG: exit %d, stderr %q; want a warning that durability cannot be checked", r.code, r.stderr)
	}

	if err := c.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	r = ck(t, 30*time.Second, "status", "--storage", url)
	if r.code != 0 || strings.Contains(r.stderr, "may lose") {
		t.Errorf("status on a Redis with appendonly yes: exit %d, stderr %q; want no warning", r.code, r.stderr)
	}
}
