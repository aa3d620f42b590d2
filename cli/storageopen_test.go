package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStorageWhere(t *testing.T) {
	for _, tt := range []struct{ spec, want string }{
		{"/var/lib/certkeeper", "/var/lib/certkeeper"},
		{"redis://u:s3cret@10.0.0.5:6379/0?prefix=p", "redis://REDACTED@10.0.0.5:6379/0"},
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
