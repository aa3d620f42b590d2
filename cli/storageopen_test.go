package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStorageWhere(t *testing.T) {
	for _, tt := range []struct{ spec, want string }{
		{"/var/lib/certkeeper", "/var/lib/certkeeper"},
		{"redis://u:s3cret@10.0.0.5:6379/0?prefix=p", `redis://REDACTED@10.0.0.5:6379/0 (prefix "p")`},
		{"redis+sentinel://s1:26379,s2:26379/m?sentinel_password=s3cret", "redis+sentinel://s1:26379,s2:26379/m"},
		{"redis://u:s3cret/x@10.0.0.5:6379/0", "redis://REDACTED@10.0.0.5:6379/0"},
	} {
		if got := storageWhere(tt.spec); got != tt.want || strings.Contains(got, "s3cret") {
			t.Errorf("storageWhere(%q) = %q, want %q", tt.spec, got, tt.want)
		}
	}
}

// TestProxyConfigStorageKeys: the cluster settings have config keys, and
// flags win over them.
func TestProxyConfigStorageKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "proxy.yaml")
	data := "storage: \"redis://10.0.0.5:6379/0?lease=10s\"\nstorage_key_file: \"/etc/certkeeper/storage.key\"\norder_limit: \"10/1m\"\n"
	if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadProxyConfig(&source{file: f, set: map[string]bool{"order-limit": true}}, &proxyConfig{engineConfig: engineConfig{OrderLimit: "5/1m"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage != "redis://10.0.0.5:6379/0?lease=10s" || cfg.StorageKey != "/etc/certkeeper/storage.key" || cfg.OrderLimit != "5/1m" {
		t.Errorf("config = storage %q, storage_key_file %q, order_limit %q", cfg.Storage, cfg.StorageKey, cfg.OrderLimit)
	}
}

// TestRedisLogsStructured: go-redis's own messages (its dial failures, on
// a process-wide logger that prints plain text) go to certkeeper's log at
// debug: nothing of theirs at the default level, and JSON records under
// --log-format json, so a log shipper parses every line (trial 11).
func TestRedisLogsStructured(t *testing.T) {
	down := "redis://127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t)) // nothing listens there
	r := ck(t, 30*time.Second, "status", "--storage", down)
	if r.code == 0 || strings.Contains(r.stderr, "pool.go") || strings.Contains(r.stderr, "redis: 20") {
		t.Errorf("status with Redis down: exit %d, stderr has go-redis's own lines:\n%s", r.code, r.stderr)
	}
	r = ck(t, 30*time.Second, "status", "--storage", down, "--log-level", "debug", "--log-format", "json")
	goRedis := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("a stderr line is not JSON: %q", line)
		}
		if rec["from"] == "go-redis" {
			goRedis++
		}
	}
	if goRedis == 0 {
		t.Errorf("go-redis's messages are not in the debug log:\n%s", r.stderr)
	}
	// The error that ends the command is an Error record (a container
	// trial's alerting on the level missed a proxy that would not start).
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	var last struct{ Level, Msg string }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Level != "ERROR" || !strings.HasPrefix(last.Msg, "certkeeper status: ") {
		t.Errorf("the command's error is logged %+v (%v), want level ERROR", last, err)
	}
}
