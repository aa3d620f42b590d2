package certkeeper_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// clusterNodes starts n Managers on one Redis; node 0 serves on the port
// Pebble validates tls-alpn-01 on, the others on ports of their own, so
// every order a node other than 0 places is validated through node 0.
func clusterNodes(t *testing.T, ca *testca.CA, n int, tune func(*certkeeper.Manager)) []*server {
	t.Helper()
	rs := testsvc.Redis(t)
	var nodes []*server
	for i := range n {
		st, err := redisstore.Open("redis://" + rs.Addr() + "?lease=2s")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		m := newACMEManager(ca, st, policy.Allowlist("*.cluster.test"))
		if tune != nil {
			tune(m)
		}
		t.Cleanup(func() { m.Close() })
		port := 0
		if i == 0 {
			port = ca.TLSPort()
		}
		nodes = append(nodes, &server{m: m, ca: ca, addr: serveOnPort(t, m, port)})
	}
	return nodes
}

// TestClusterOneOrderPerName: three Managers on one Redis, handshakes for
// new names on all of them at once: one order per name, one serial per
// name on every node, and orders placed by nodes the CA does not
// validate through succeed (their challenge answers are shared).
func TestClusterOneOrderPerName(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	nodes := clusterNodes(t, ca, 3, nil)
	roots := ca.IssuingRootPool(t)
	const names = 8
	serials := make([][]string, names)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range names {
		serials[i] = make([]string, len(nodes))
		for j, s := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("n%d.cluster.test", i)
				leaf, err := s.handshake(t, name, roots)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("node %d, %s: %w", j, name, err))
					return
				}
				serials[i][j] = leaf.SerialNumber.String()
			}()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, s := range serials {
		for j := range s {
			if s[j] != s[0] {
				t.Errorf("n%d.cluster.test: node %d serves serial %s, node 0 %s", i, j, s[j], s[0])
			}
		}
	}
	if got := ca.Orders(); got != names {
		t.Errorf("orders = %d, want %d", got, names)
	}
}

// TestClusterOrderLimit: three nodes sharing a budget of 3 orders place 3
// orders in all, however many new names arrive.
func TestClusterOrderLimit(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	nodes := clusterNodes(t, ca, 3, func(m *certkeeper.Manager) {
		m.Cluster.OrderLimit = 3
		m.Cluster.OrderWindow = time.Minute
	})
	roots := ca.IssuingRootPool(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, limited int
	for i := range 12 {
		s := nodes[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.handshake(t, fmt.Sprintf("l%d.cluster.test", i), roots)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else {
				limited++
			}
		}()
	}
	wg.Wait()
	if got := ca.Orders(); got != 3 || ok != 3 {
		t.Errorf("orders = %d, handshakes served = %d; want 3 and 3 (limited: %d)", got, ok, limited)
	}
}
