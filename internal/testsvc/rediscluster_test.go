package testsvc

import (
	"strings"
	"testing"
)

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	c := RedisCluster(t, 3)
	addrs := c.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs() = %q, want 3 addresses", addrs)
	}
	for _, addr := range addrs {
		info, err := redisBulk(t.Context(), addr, "CLUSTER", "INFO")
		if err != nil {
			t.Fatalf("CLUSTER INFO on %s: %v", addr, err)
		}
		for _, want := range []string{"cluster_state:ok", "cluster_size:3", "cluster_slots_assigned:16384"} {
			if !strings.Contains(info, want) {
				t.Errorf("CLUSTER INFO on %s lacks %q:\n%s", addr, want, info)
			}
		}
	}
	// A key lands on one master; the others redirect to it.
	moved := 0
	for _, addr := range addrs {
		if got := redisDo(t, addr, "SET", "k", "v"); strings.HasPrefix(got, "-MOVED") {
			moved++
		} else if got != "+OK" {
			t.Errorf("SET k v on %s = %q, want +OK or -MOVED", addr, got)
		}
	}
	if moved != 2 {
		t.Errorf("%d of 3 masters redirected SET k, want 2", moved)
	}
	c.Stop()
	c.Stop()
	if err := redisPing(t.Context(), addrs[0]); err == nil {
		t.Errorf("PING %s after Stop succeeded", addrs[0])
	}
}
