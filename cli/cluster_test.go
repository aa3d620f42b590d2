package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// clusterLease is the lock lease of the cluster tests' proxies: short, so
// a killed lock holder delays the others briefly.
const clusterLease = 3 * time.Second

// cluster is a Redis (or a PostgreSQL) and the proxies sharing it.
type cluster struct {
	ca    *testca.CA
	redis *testsvc.RedisServer    // nil on PostgreSQL
	pg    *testsvc.PostgresServer // nil on Redis
	url   string
	roots *x509.CertPool
	nodes []*clusterNode

	storageArgs []string // more storage flags of every node: a password file

	rc  *redis.Client // see redisClient
	pgc *pgx.Conn     // see pgConn
}

// clusterNode is one proxy of a cluster.
type clusterNode struct {
	port int
	proc *proxyProc
}

// newCluster starts Pebble and Redis, and n proxies on that Redis; node 0
// listens on the port Pebble validates tls-alpn-01 on, so every
// validation of an order another node places reaches node 0.
func newCluster(t *testing.T, opts testca.Options, n int, extra ...string) *cluster {
	t.Helper()
	ca := testca.Start(t, opts)
	rs := testsvc.Redis(t)
	c := &cluster{ca: ca, redis: rs, roots: ca.IssuingRootPool(t),
		url: "redis://" + rs.Addr() + "/0?prefix=ck:&lease=" + clusterLease.String()}
	for i := range n {
		c.start(t, i, extra...)
	}
	c.dumpOnFailure(t)
	return c
}

// newPostgresCluster is newCluster on a PostgreSQL (schema ck) instead
// of Redis.
func newPostgresCluster(t *testing.T, opts testca.Options, n int, extra ...string) *cluster {
	t.Helper()
	ca := testca.Start(t, opts)
	pg := testsvc.Postgres(t)
	c := &cluster{ca: ca, pg: pg, roots: ca.IssuingRootPool(t),
		url:         pg.URL("postgres") + "&schema=ck&lease=" + clusterLease.String(),
		storageArgs: []string{"--storage-password-file", writePasswordFile(t, pg)}}
	for i := range n {
		c.start(t, i, extra...)
	}
	c.dumpOnFailure(t)
	return c
}

// clusterBackends are the shared storages the cluster tests run on, each
// with its cluster constructor.
var clusterBackends = []struct {
	name       string
	newCluster func(t *testing.T, opts testca.Options, n int, extra ...string) *cluster
}{
	{"Redis", newCluster},
	{"PostgreSQL", newPostgresCluster},
}

// stopStorage kills the cluster's Redis or PostgreSQL.
func (c *cluster) stopStorage() {
	if c.pg != nil {
		c.pg.Stop()
	} else {
		c.redis.Stop()
	}
}

// restartStorage starts the cluster's Redis or PostgreSQL again on the
// same address.
func (c *cluster) restartStorage(t *testing.T) {
	t.Helper()
	if c.pg != nil {
		c.pg.Restart(t)
	} else {
		c.redis.Restart(t)
	}
}

// storageWhere is how the nodes' errors name the cluster's storage.
func (c *cluster) storageWhere() string {
	if c.pg != nil {
		return "PostgreSQL at " + c.pg.Addr()
	}
	return "on Redis at " + c.redis.Addr()
}

// start starts node i (again, if it was killed) with extra flags.
func (c *cluster) start(t *testing.T, i int, extra ...string) *clusterNode {
	t.Helper()
	port := c.ca.TLSPort()
	if i > 0 {
		if i < len(c.nodes) {
			port = c.nodes[i].port
		} else {
			port = testsvc.FreePort(t)
		}
	}
	backend := newBackend(t, "hello")
	args := withFlags([]string{
		"--tls-addr", "127.0.0.1:" + strconv.Itoa(port), "--backend", backend.url,
		"--allow", "*.cluster.test", "--ca", c.ca.DirectoryURL(), "--ca-roots", c.ca.ListenerRootFile(),
		"--profile", "default", "--storage", c.url, "--log-level", "info",
	}, append(c.storageArgs, extra...)...)
	node := &clusterNode{port: port, proc: startProxyLogged(t, args...)}
	if i < len(c.nodes) {
		c.nodes[i] = node
	} else {
		c.nodes = append(c.nodes, node)
	}
	return node
}

// serial connects to node with SNI name and returns the served serial.
func (c *cluster) serial(node *clusterNode, name string, timeout time.Duration) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", "127.0.0.1:"+strconv.Itoa(node.port),
		&tls.Config{ServerName: name, RootCAs: c.roots})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// redisClient is a client of the cluster's Redis, for looking at what the
// nodes keep there.
func (c *cluster) redisClient(t *testing.T) *redis.Client {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: c.redis.Addr()})
	t.Cleanup(func() { rc.Close() })
	return rc
}

// handshakeAll makes one handshake per name on each node, all at once, and
// returns the serials: serials[name][node].
func (c *cluster) handshakeAll(t *testing.T, names []string) (map[string][]string, error) {
	t.Helper()
	serials := make(map[string][]string)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, name := range names { // filled before any goroutine reads the map
		serials[name] = make([]string, len(c.nodes))
	}
	for _, name := range names {
		for j, node := range c.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := c.serial(node, name, 60*time.Second)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("node %d, %s: %w", j, name, err))
				}
				serials[name][j] = s
			}()
		}
	}
	wg.Wait()
	return serials, errors.Join(errs...)
}

func clusterNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%d.cluster.test", prefix, i)
	}
	return names
}

// TestClusterFiftyNames: three proxies on one Redis, 50 new names, a
// handshake for each name on every node at once: exactly 50 orders, and
// every node serves the same serial for each name. The CA validates only
// through node 0, so the orders nodes 1 and 2 place succeed only because
// node 0 answers their challenges from storage.
//
// It once stalled (every handshake ran into its 60 s deadline) inside a
// full test run: its nodes log at debug level, and a failure also shows
// the storage's locks and challenge answers and every node's goroutines
// (dumpOnFailure).
func TestClusterFiftyNames(t *testing.T) {
	testClusterFiftyNames(t, newCluster(t, testca.Options{}, 3, "--log-level", "debug"))
}

// TestClusterFiftyNamesPostgres is TestClusterFiftyNames with the three
// proxies on one PostgreSQL: its lease locks keep the orders at 50 and
// its LISTEN/NOTIFY carries the challenge answers between nodes.
func TestClusterFiftyNamesPostgres(t *testing.T) {
	testClusterFiftyNames(t, newPostgresCluster(t, testca.Options{}, 3, "--log-level", "debug"))
}

func testClusterFiftyNames(t *testing.T, c *cluster) {
	names := clusterNames("f", 50)
	start := time.Now()
	serials, err := c.handshakeAll(t, names)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("150 handshakes for 50 new names on 3 nodes: %s", time.Since(start).Round(time.Millisecond))
	for _, name := range names {
		s := serials[name]
		if s[1] != s[0] || s[2] != s[0] {
			t.Errorf("%s: nodes serve serials %v, want one", name, s)
		}
	}
	if got := c.ca.Orders(); got != len(names) {
		t.Errorf("orders = %d, want %d", got, len(names))
	}
	byOthers := 0
	for i, node := range c.nodes {
		n := strings.Count(node.proc.output(), "certificate obtained")
		t.Logf("node %d obtained %d certificates", i, n)
		if i > 0 {
			byOthers += n
		}
	}
	if byOthers == 0 {
		t.Error("nodes 1 and 2 obtained no certificate: validation through another node is untested")
	}
}

// TestClusterValidationElsewhere: the CA's validation request reaches node
// 0 while node 1 orders; node 1's order succeeds.
func TestClusterValidationElsewhere(t *testing.T) {
	c := newCluster(t, testca.Options{}, 2)
	start := time.Now()
	if _, err := c.serial(c.nodes[1], "v.cluster.test", 60*time.Second); err != nil {
		t.Fatalf("node 1 ordering a name the CA validates through node 0: %v", err)
	}
	// Node 0 reports the answer over pub/sub, so node 1 polls the CA at
	// once rather than after its 2 s wait for an answer of its own.
	t.Logf("first handshake on node 1, validated through node 0: %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(c.nodes[1].proc.output(), "certificate obtained") {
		t.Error("node 1 did not obtain the certificate itself")
	}
	if got := c.ca.Orders(); got != 1 {
		t.Errorf("orders = %d, want 1", got)
	}
}

// TestClusterLockHolderKilled: the node holding a name's issue lock is
// killed with SIGKILL; another node completes the name within one lease.
// It runs on each shared storage.
func TestClusterLockHolderKilled(t *testing.T) {
	for _, b := range clusterBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testClusterLockHolderKilled(t, b.newCluster(t, testca.Options{}, 2))
		})
	}
}

func testClusterLockHolderKilled(t *testing.T, c *cluster) {
	name := "k.cluster.test"
	go c.serial(c.nodes[1], name, 60*time.Second) // fails when node 1 dies
	deadline := time.Now().Add(20 * time.Second)
	for !c.lockHeld(t, storage.IssueLock(name)) {
		if time.Now().After(deadline) {
			t.Fatal("node 1 never took the issue lock")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := c.nodes[1].proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if !c.lockHeld(t, storage.IssueLock(name)) {
		t.Fatal("the lock was released before node 1 died: nothing to wait for")
	}
	if _, err := c.serial(c.nodes[0], name, 60*time.Second); err != nil {
		t.Fatalf("node 0 after the lock holder died: %v", err)
	}
	took := time.Since(killed)
	t.Logf("node 0 completed %s %s after the lock holder was killed (lease %s)", name, took.Round(time.Millisecond), clusterLease)
	// The lease outlives its holder by at most one lease; then a waiter
	// polls (at most 0.5 s apart) and orders.
	if took > clusterLease+3*time.Second {
		t.Errorf("node 0 took %s, want within one lease (%s) plus the issuance", took, clusterLease)
	}
}

// lockHeld reports whether the cluster's storage holds an unexpired lease
// of the lock called name.
func (c *cluster) lockHeld(t *testing.T, name string) bool {
	t.Helper()
	if c.pg == nil {
		if c.rc == nil {
			c.rc = c.redisClient(t)
		}
		return c.rc.Exists(t.Context(), "ck:.locks/"+name).Val() == 1
	}
	var held bool
	err := c.pgConn(t).QueryRow(t.Context(),
		"SELECT EXISTS (SELECT 1 FROM ck.locks WHERE name = $1 AND expires > clock_timestamp())", name).Scan(&held)
	if err != nil {
		t.Fatalf("reading the locks table: %v", err)
	}
	return held
}

// renewalProfile is the validity of TestClusterRenewal's certificates:
// short enough that each is renewed within the test. Pebble's ARI window
// spans the whole lifetime, so a node renews at a random point of its
// first nine tenths, and a renewed certificate may be renewed again
// before the test has seen every first renewal.
const renewalProfile = 30 * time.Second

// TestClusterRenewal: with 30-second certificates, every certificate is
// renewed, each by one node only (every order after the first ones
// replaces a certificate and is one the test saw stored), and every node
// serves the renewed serial within 1 s of its storage: the storing node
// publishes a notice (Redis pub/sub, PostgreSQL NOTIFY). It runs on each
// shared storage.
func TestClusterRenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("half a minute of waiting for renewals; skipped with -short")
	}
	for _, b := range clusterBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testClusterRenewal(t, b.newCluster(t, testca.Options{Profiles: map[string]testca.Profile{
				"default": {Description: renewalProfile.String(), ValidityPeriod: renewalProfile},
			}}, 3))
		})
	}
}

func testClusterRenewal(t *testing.T, c *cluster) {
	names := clusterNames("r", 3)
	first, err := c.handshakeAll(t, names)
	if err != nil {
		t.Fatal(err)
	}
	// chain[name] is every serial the test saw stored for name, in order;
	// storedAt when it first saw each.
	chain := map[string][]string{}
	storedAt := map[string]time.Time{}
	for _, name := range names {
		chain[name] = []string{first[name][0]}
	}
	observe := func() {
		for _, name := range names {
			if s := c.storedLeafSerial(t, name); s != "" && s != chain[name][len(chain[name])-1] {
				chain[name] = append(chain[name], s)
				storedAt[s] = time.Now()
			}
		}
	}
	// served[name][node] is the lag between the storage of a renewed
	// serial and the node serving it, measured from when the test saw it
	// stored: at most one round of this loop after the store.
	served := map[string][]time.Duration{}
	wait := renewalProfile + 15*time.Second
	deadline := time.Now().Add(wait)
	for !allServed(served, len(names), len(c.nodes)) {
		if time.Now().After(deadline) {
			t.Fatalf("not every certificate was renewed and served everywhere within %s: stored %v, served %v", wait, chain, served)
		}
		observe()
		for _, name := range names {
			if len(chain[name]) < 2 {
				continue
			}
			if served[name] == nil {
				served[name] = make([]time.Duration, len(c.nodes))
			}
			for j, node := range c.nodes {
				if served[name][j] != 0 {
					continue
				}
				s, err := c.serial(node, name, 5*time.Second)
				if at, renewed := storedAt[s]; err == nil && renewed {
					served[name][j] = max(time.Since(at), time.Nanosecond)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, name := range names {
		for j, lag := range served[name] {
			t.Logf("%s: node %d served the renewed serial %s after storage", name, j, lag.Round(time.Millisecond))
			if lag > time.Second {
				t.Errorf("%s: node %d served the renewed serial %s after it was stored, want within 1 s", name, j, lag)
			}
		}
	}
	// A node that renewed what another had renewed would order now.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		observe()
	}
	// Stop the nodes so that the counts no longer move (a certificate
	// renewed early may be due again at any moment), then compare: a
	// renewal stored has its order counted before it, and an order cut
	// short by the kill is counted but never stored.
	for _, node := range c.nodes {
		_ = node.proc.cmd.Process.Kill()
		_ = node.proc.cmd.Wait()
	}
	time.Sleep(300 * time.Millisecond) // Pebble logs the last orders
	observe()
	renewals := 0
	for _, name := range names {
		renewals += len(chain[name]) - 1
	}
	orders, replacements := c.ca.Orders(), c.ca.Replacements()
	t.Logf("%d renewals of %d names seen in storage, %d orders, %d of them replacements", renewals, len(names), orders, replacements)
	// Two nodes renewing one certificate would show as an order that
	// replaces nothing: the CA refuses a second replacement of a
	// certificate (alreadyReplaced), and the renewal orders again without.
	if orders != len(names)+replacements {
		t.Errorf("orders = %d, want the %d first orders and the %d replacements: an order beyond them renewed what another node had renewed",
			orders, len(names), replacements)
	}
	if replacements < renewals || replacements > renewals+len(c.nodes) {
		t.Errorf("replacement orders = %d, want one per renewal seen in storage (%d), and at most one per node cut short by the kill", replacements, renewals)
	}
}

// allServed reports whether every one of names names has a renewed serial
// served by all nodes.
func allServed(served map[string][]time.Duration, names, nodes int) bool {
	if len(served) < names {
		return false
	}
	for _, lags := range served {
		for j := range nodes {
			if lags[j] == 0 {
				return false
			}
		}
	}
	return true
}

// storedLeafSerial returns the serial of the certificate the cluster's
// storage holds for name, or "".
func (c *cluster) storedLeafSerial(t *testing.T, name string) string {
	t.Helper()
	key, data := c.storedCertificate(t, name)
	if key == "" {
		return ""
	}
	rec, err := storage.UnmarshalCertificate(key, data)
	if err != nil {
		return ""
	}
	leaf, err := rec.Leaf()
	if err != nil {
		return ""
	}
	return leaf.SerialNumber.String()
}

// storedCertificate returns the storage key and value of name's
// certificate, read from Redis or PostgreSQL directly, or "" and nil.
func (c *cluster) storedCertificate(t *testing.T, name string) (key string, value []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if c.pg != nil {
		err := c.pgConn(t).QueryRow(ctx, `SELECT key, value FROM ck."values" WHERE key LIKE 'certificates/%/' || $1 || '.json' ORDER BY key LIMIT 1`, name).Scan(&key, &value)
		if err != nil {
			return "", nil
		}
		return key, value
	}
	rc := c.redisClient(t)
	keys, err := rc.Keys(ctx, "ck:certificates/*/"+name+".json").Result()
	if err != nil || len(keys) == 0 {
		return "", nil
	}
	value, err = rc.Get(ctx, keys[0]).Bytes()
	if err != nil {
		return "", nil
	}
	return strings.TrimPrefix(keys[0], "ck:"), value
}

// pgConn is a connection to the cluster's PostgreSQL, for looking at what
// the nodes keep there; one per cluster, closed when the test ends.
func (c *cluster) pgConn(t *testing.T) *pgx.Conn {
	t.Helper()
	if c.pgc == nil {
		c.pgc = pgConnect(t, c.pg)
	}
	return c.pgc
}

// TestClusterRedisDown: with Redis stopped, every node serves the names it
// holds; a new name fails within 5 s with an error naming Redis; once
// Redis is back, new names issue again.
func TestClusterRedisDown(t *testing.T) {
	testClusterStorageDown(t, newCluster(t, testca.Options{}, 3), "Redis")
}

// TestClusterPostgresDown is TestClusterRedisDown with the nodes on
// PostgreSQL: the error of a new name names PostgreSQL and its address.
func TestClusterPostgresDown(t *testing.T) {
	testClusterStorageDown(t, newPostgresCluster(t, testca.Options{}, 3), "PostgreSQL")
}

// testClusterStorageDown stops c's storage, called db in messages, and
// checks what TestClusterRedisDown describes.
func testClusterStorageDown(t *testing.T, c *cluster, db string) {
	known := clusterNames("d", 3)
	if _, err := c.handshakeAll(t, known); err != nil {
		t.Fatal(err)
	}
	c.stopStorage()
	const rounds = 10
	ok := 0
	for range rounds {
		for _, name := range known {
			for j, node := range c.nodes {
				if _, err := c.serial(node, name, 5*time.Second); err != nil {
					t.Errorf("%s down: node %d, known name %s: %v", db, j, name, err)
				} else {
					ok++
				}
			}
		}
	}
	t.Logf("%s down: %d of %d handshakes for known names succeeded", db, ok, rounds*len(known)*len(c.nodes))
	start := time.Now()
	_, err := c.serial(c.nodes[1], "new1.cluster.test", 30*time.Second)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("%s down: a new name got a certificate", db)
	}
	t.Logf("%s down: a new name failed after %s", db, took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("%s down: a new name failed after %s, want within 5 s", db, took)
	}
	if out := c.nodes[1].proc.output(); !strings.Contains(out, "new1.cluster.test") || !strings.Contains(out, c.storageWhere()) {
		t.Errorf("%s down: node 1's log does not name %q for new1.cluster.test:\n%s", db, c.storageWhere(), out)
	}
	if got := c.ca.Orders(); got != len(known) {
		t.Errorf("%s down: orders = %d, want %d (no order without a lock)", db, got, len(known))
	}

	c.restartStorage(t)
	back := time.Now()
	deadline := back.Add(30 * time.Second)
	// Each try is a fresh name: a name whose issuance failed while the
	// nodes' connections were still being re-established is rightly held
	// back by its failure backoff, which is not what this checks.
	for i := 2; ; i++ {
		name := fmt.Sprintf("new%d.cluster.test", i)
		_, err := c.serial(c.nodes[1], name, 30*time.Second)
		if err == nil {
			t.Logf("%s back: %s served %s after the restart (try %d)", db, name, time.Since(back).Round(time.Millisecond), i-1)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s back: a new name still fails: %v", db, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, name := range known {
		if _, err := c.serial(c.nodes[2], name, 5*time.Second); err != nil {
			t.Errorf("%s back: node 2, %s: %v", db, name, err)
		}
	}
}

// TestClusterOrderLimit: three nodes with --order-limit 10/1m and 50 new
// names at once place at most 10 orders in all.
func TestClusterOrderLimit(t *testing.T) {
	c := newCluster(t, testca.Options{}, 3, "--order-limit", "10/1m")
	names := clusterNames("o", 50)
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := 0
	start := time.Now()
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.serial(c.nodes[i%3], name, 60*time.Second); err == nil {
				mu.Lock()
				served++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	orders := c.ca.Orders()
	t.Logf("50 new names on 3 nodes with a shared limit of 10/min: %d orders, %d served, in %s", orders, served, took.Round(time.Millisecond))
	if orders > 10 {
		t.Errorf("orders = %d within %s, want at most 10", orders, took)
	}
	if orders == 0 || served != orders {
		t.Errorf("orders = %d, names served = %d: want the budget used, each order served", orders, served)
	}
}

// TestStorageMigrateToRedis: 20 certificates in a directory, migrated to
// Redis (twice: it is idempotent), are served by a proxy on Redis with no
// new order.
func TestStorageMigrateToRedis(t *testing.T) {
	m := newMigration(t)
	dir, names := m.dir, m.names

	rs := testsvc.Redis(t)
	url := "redis://" + rs.Addr() + "/0"
	for i := range 2 {
		r := ck(t, 60*time.Second, "storage", "migrate", "--from", dir, "--to", url)
		if r.code != 0 {
			t.Fatalf("storage migrate (run %d) exited %d: %s", i+1, r.code, r.stderr)
		}
		t.Logf("run %d: %s", i+1, strings.TrimSpace(r.stderr))
		if i == 1 && !strings.Contains(r.stderr, " 0 copied") {
			t.Errorf("a second migrate copied keys again: %s", r.stderr)
		}
	}
	m.serve(t, "Redis", "--storage", url)

	// Migrating with --to-key-file turns encryption at rest on.
	keyFile := filepath.Join(t.TempDir(), "storage.key")
	if err := os.WriteFile(keyFile, []byte(ck(t, 10*time.Second, "storage", "keygen").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	sealed := url + "?prefix=sealed:"
	if r := ck(t, 60*time.Second, "storage", "migrate", "--from", dir, "--to", sealed, "--to-key-file", keyFile); r.code != 0 {
		t.Fatalf("storage migrate --to-key-file exited %d: %s", r.code, r.stderr)
	}
	r := ck(t, 30*time.Second, "status", "--storage", sealed, "--storage-key-file", keyFile)
	if r.code != 0 || strings.Count(r.stdout, ".m.test") != len(names) {
		t.Errorf("status on the encrypted copy: exit %d, want %d names:\n%s%s", r.code, len(names), r.stdout, r.stderr)
	}
	if r := ck(t, 30*time.Second, "status", "--storage", sealed); r.code == 0 || !strings.Contains(r.stderr, "--storage-key-file") {
		t.Errorf("status on the encrypted copy without the key: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestStorageEncryptedRedis: with --storage-key-file, no private key
// appears in clear in what redis-cli --scan and GET show, the proxy serves
// as before (also after a restart), and a wrong key file fails at start
// with a clear error. The key is then rotated: the new key alone serves
// everything, the retired one opens nothing.
func TestStorageEncryptedRedis(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		testsvc.Unavailable(t, "redis-cli", "install it: apt-get install redis-tools", err)
	}
	dir := t.TempDir()
	keyFile, wrongFile := filepath.Join(dir, "storage.key"), filepath.Join(dir, "wrong.key")
	for _, f := range []string{keyFile, wrongFile} {
		r := ck(t, 10*time.Second, "storage", "keygen")
		if r.code != 0 {
			t.Fatalf("storage keygen: %s", r.stderr)
		}
		if err := os.WriteFile(f, []byte(r.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := newCluster(t, testca.Options{}, 1, "--storage-key-file", keyFile)
	names := clusterNames("e", 2)
	first, err := c.handshakeAll(t, names)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(c.redis.Addr())
	redisCLI := func(args ...string) string {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, cli, append([]string{"-h", host, "-p", port}, args...)...).Output()
		if err != nil {
			t.Fatalf("redis-cli %v: %v", args, err)
		}
		return string(out)
	}
	keys := strings.Fields(redisCLI("--scan"))
	var certs int
	for _, k := range keys {
		if strings.HasPrefix(k, "ck:.locks/") {
			continue
		}
		if strings.HasPrefix(k, "ck:certificates/") || strings.HasSuffix(k, ".key") {
			certs++
		}
		if strings.HasPrefix(k, "ck:certificates/") && certs == 1 {
			t.Logf("Redis memory of one sealed ECDSA certificate (%s): %s bytes", k, strings.TrimSpace(redisCLI("MEMORY", "USAGE", k)))
		}
		if v := redisCLI("GET", k); strings.Contains(v, "PRIVATE KEY") {
			t.Errorf("redis-cli GET %s shows a private key in clear", k)
		}
	}
	t.Logf("redis-cli --scan: %d keys, %d of certificates and account keys, none with a private key in clear", len(keys), certs)
	if certs < len(names)+1 {
		t.Errorf("redis-cli --scan lists %d certificate and account keys, want at least %d: %v", certs, len(names)+1, keys)
	}

	// A restarted node opens what it sealed.
	_ = c.nodes[0].proc.cmd.Process.Kill()
	_ = c.nodes[0].proc.cmd.Wait()
	c.start(t, 0, "--storage-key-file", keyFile)
	for _, name := range names {
		if s, err := c.serial(c.nodes[0], name, 10*time.Second); err != nil || s != first[name][0] {
			t.Errorf("after a restart %s: serial %s, %v; want %s", name, s, err, first[name][0])
		}
	}
	orders := c.ca.Orders()

	// The wrong key file, or none, fails at start.
	for _, extra := range [][]string{{"--storage-key-file", wrongFile}, nil} {
		args := append([]string{"proxy", "--tls-addr", "127.0.0.1:0", "--allow", "*.cluster.test", "--ca", c.ca.DirectoryURL(),
			"--ca-roots", c.ca.ListenerRootFile(), "--storage", c.url}, extra...)
		r := ck(t, 20*time.Second, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "--storage-key-file") {
			t.Errorf("proxy with key file %v: exit %d, stderr %q; want a failure naming --storage-key-file", extra, r.code, r.stderr)
		}
	}

	// Rotation: a key file of the new key and the old one, rekey, then
	// the new key alone opens everything.
	newFile, rotated := filepath.Join(dir, "new.key"), filepath.Join(dir, "rotated.key")
	r := ck(t, 10*time.Second, "storage", "keygen")
	oldKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newFile, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rotated, []byte(r.stdout+string(oldKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := ck(t, 20*time.Second, "storage", "rekey", "--storage", c.url, "--storage-key-file", rotated); r.code != 0 {
		t.Fatalf("storage rekey exited %d: %s", r.code, r.stderr)
	} else {
		t.Logf("rekey: %s", strings.TrimSpace(r.stderr))
	}
	_ = c.nodes[0].proc.cmd.Process.Kill()
	_ = c.nodes[0].proc.cmd.Wait()
	c.start(t, 0, "--storage-key-file", newFile)
	for _, name := range names {
		if s, err := c.serial(c.nodes[0], name, 10*time.Second); err != nil || s != first[name][0] {
			t.Errorf("after rotation %s: serial %s, %v; want %s", name, s, err, first[name][0])
		}
	}
	if r := ck(t, 20*time.Second, "status", "--storage", c.url, "--storage-key-file", keyFile); r.code == 0 {
		t.Errorf("status with the retired key succeeded after rekey:\n%s", r.stdout)
	}
	if got := c.ca.Orders(); got != orders {
		t.Errorf("%d orders placed after the restart, want 0", got-orders)
	}
}
