package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/certkeeper/certkeeper/internal/testca"
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

// pgConnect connects to database postgres of pg as PostgresUser, for
// looking at what certkeeper keeps there; the connection is closed when
// the test ends.
func pgConnect(t *testing.T, pg *testsvc.PostgresServer) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = pg.Password()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting to PostgreSQL at %s: %v", pg.Addr(), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
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

	open := filepath.Join(t.TempDir(), "open.pw")
	if err := os.WriteFile(open, []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = ck(t, 30*time.Second, "status", "--storage", url, "--storage-password-file", open)
	if r.code == 0 || !strings.Contains(r.stderr, "chmod 600") || strings.Contains(r.stderr, secret) {
		t.Errorf("status with a password file others may read: exit %d, stderr %q; want a refusal saying chmod 600", r.code, r.stderr)
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
	if strings.Contains(r.stderr, "fsync=off") {
		t.Errorf("status, a one-off command, warned about the server's durability: %s", r.stderr)
	}
	if out := serverOn(t, url, "--storage-password-file", pwFile); !strings.Contains(out, "fsync=off") || !strings.Contains(out, "WARN") {
		t.Errorf("server on a PostgreSQL with fsync=off: log %q; want a warning naming fsync=off", out)
	}
}

// serverOn starts the binary's server on storage with args, waits until
// it listens, and returns what it logged by then.
func serverOn(t *testing.T, storage string, args ...string) string {
	t.Helper()
	args = append([]string{"server", "--listen", "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t)), "--no-auth", "--ca", "local", "--allow", "a.test", "--storage", storage}, args...)
	p := startLogged(t, binary, "server listening", args...)
	out := p.output()
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	return out
}

// TestDurabilityWarningRedis: a server on a Redis with neither RDB
// snapshots nor AOF warns, naming both settings; on one that refuses
// CONFIG GET it warns that durability cannot be checked; it carries on.
// One-off commands (status, cert issue) leave the warnings to the server
// that keeps running on it, and say nothing (they warned at every run).
func TestDurabilityWarningRedis(t *testing.T) {
	t.Parallel()
	rs := testsvc.Redis(t) // save "" and appendonly no
	url := "redis://" + rs.Addr() + "/0"
	if out := serverOn(t, url); !strings.Contains(out, `save \"\"`) || !strings.Contains(out, "appendonly no") {
		t.Errorf("server on a Redis without persistence: log %q; want a warning naming save and appendonly", out)
	}
	for _, args := range [][]string{
		{"status", "--storage", url},
		{"cert", "issue", "-d", "a.test", "--ca", "local", "--storage", url, "--out-dir", t.TempDir()},
	} {
		r := ck(t, 30*time.Second, args...)
		if r.code != 0 || strings.Contains(r.stderr, "may lose") || strings.Contains(r.stderr, "appendonly") {
			t.Errorf("%s on a Redis without persistence: exit %d, stderr %q; want exit 0 and no durability warning", strings.Join(args[:2], " "), r.code, r.stderr)
		}
	}

	c := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Do(ctx, "ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "&*", "+@all", "-config").Err(); err != nil {
		t.Fatal(err)
	}
	if out := serverOn(t, "redis://noconfig:pw@"+rs.Addr()+"/0"); !strings.Contains(out, "durability cannot be checked") {
		t.Errorf("server on a Redis refusing CONFIG: log %q; want a warning that durability cannot be checked", out)
	}

	if err := c.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if out := serverOn(t, url); strings.Contains(out, "may lose") {
		t.Errorf("server on a Redis with appendonly yes: log %q; want no warning", out)
	}
}

// migration is a directory of 20 certificates Pebble issued through a
// proxy, for the storage migrate tests.
type migration struct {
	ca      *testca.CA
	roots   *x509.CertPool
	dir     string
	names   []string
	args    []string          // the proxy's flags but --storage
	serials map[string]string // by name
	orders  int               // placed to fill dir
}

// newMigration starts Pebble and a proxy on a directory, has it obtain 20
// certificates (n0.m.test to n19.m.test) and stops it.
func newMigration(t *testing.T) *migration {
	t.Helper()
	ca := testca.Start(t, testca.Options{})
	m := &migration{ca: ca, roots: ca.IssuingRootPool(t), dir: t.TempDir(), serials: map[string]string{}}
	backend := newBackend(t, "hello")
	m.args = []string{
		"--tls-addr", "127.0.0.1:" + strconv.Itoa(ca.TLSPort()), "--backend", backend.url,
		"--allow", "*.m.test", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--profile", "default",
	}
	p := startProxyLogged(t, append(m.args, "--storage", m.dir)...)
	m.names = make([]string, 20)
	for i := range m.names {
		m.names[i] = fmt.Sprintf("n%d.m.test", i)
		serialOf(t, ca.TLSPort(), m.names[i], m.roots)
	}
	for _, n := range m.names {
		m.serials[n] = serialOf(t, ca.TLSPort(), n, m.roots)
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	m.orders = ca.Orders()
	return m
}

// serve starts a proxy with storageArgs, checks that it serves every
// migrated certificate with no new order, and stops it.
func (m *migration) serve(t *testing.T, where string, storageArgs ...string) {
	t.Helper()
	p := startProxyLogged(t, append(m.args, storageArgs...)...)
	for _, n := range m.names {
		if got := serialOf(t, m.ca.TLSPort(), n, m.roots); got != m.serials[n] {
			t.Errorf("%s on %s: serial %s, want the migrated %s", n, where, got, m.serials[n])
		}
	}
	if got := m.ca.Orders(); got != m.orders {
		t.Errorf("the proxy on %s placed %d orders, want 0", where, got-m.orders)
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// TestStorageMigratePostgres: 20 certificates issued into a directory move
// to PostgreSQL (twice: the second run copies nothing), a proxy on
// PostgreSQL serves them all with no new order, and they move back to a
// directory where a proxy again serves them with no new order. Migrating
// with --to-key-file seals every private key: none is in clear in the
// database, status needs the key file.
func TestStorageMigratePostgres(t *testing.T) {
	t.Parallel()
	m := newMigration(t)
	dir, names := m.dir, m.names

	pg := testsvc.Postgres(t)
	pw := writePasswordFile(t, pg)
	url := pg.URL("postgres") + "&schema=migrated"
	for i := range 2 {
		r := ck(t, 60*time.Second, "storage", "migrate", "--from", dir, "--to", url, "--to-password-file", pw)
		if r.code != 0 {
			t.Fatalf("storage migrate to PostgreSQL (run %d) exited %d: %s", i+1, r.code, r.stderr)
		}
		t.Logf("run %d: %s", i+1, strings.TrimSpace(r.stderr))
		if i == 1 && !strings.Contains(r.stderr, " 0 copied") {
			t.Errorf("a second migrate copied keys again: %s", r.stderr)
		}
	}
	m.serve(t, "PostgreSQL", "--storage", url, "--storage-password-file", pw)
	// A mistyped schema is not an empty storage for status or export (and
	// is not created by them): a monitor would say OK, a backup hold nothing.
	typo := pg.URL("postgres") + "&schema=migratd"
	for _, args := range [][]string{{"status", "--nagios"}, {"storage", "export", "--out", filepath.Join(t.TempDir(), "x.tar.gz")}} {
		r := ck(t, 60*time.Second, append(args, "--storage", typo, "--storage-password-file", pw)...)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, `has no schema "migratd"`) {
			t.Errorf("%s on a mistyped schema: exit %d, %s%s; want a failure naming the schema", args[0], r.code, r.stdout, r.stderr)
		}
	}
	if r := ck(t, 60*time.Second, "status", "--storage", url, "--storage-password-file", pw); r.code != 0 {
		t.Errorf("status on the schema: exit %d\n%s", r.code, r.stderr)
	}

	back := t.TempDir()
	if r := ck(t, 60*time.Second, "storage", "migrate", "--from", url, "--from-password-file", pw, "--to", back); r.code != 0 {
		t.Fatalf("storage migrate from PostgreSQL exited %d: %s", r.code, r.stderr)
	}
	m.serve(t, "the directory migrated back", "--storage", back)

	// Migrating with --to-key-file turns encryption at rest on.
	keyFile := filepath.Join(t.TempDir(), "storage.key")
	if err := os.WriteFile(keyFile, []byte(ck(t, 10*time.Second, "storage", "keygen").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	sealed := pg.URL("postgres") + "&schema=sealed"
	if r := ck(t, 60*time.Second, "storage", "migrate", "--from", dir, "--to", sealed, "--to-password-file", pw, "--to-key-file", keyFile); r.code != 0 {
		t.Fatalf("storage migrate --to-key-file exited %d: %s", r.code, r.stderr)
	}
	conn := pgConnect(t, pg)
	var rows, clear int
	err := conn.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE position('PRIVATE KEY' in convert_from(value, 'UTF8')) > 0) FROM sealed."values"`).Scan(&rows, &clear)
	if err != nil {
		t.Fatal(err)
	}
	if rows < len(names) || clear != 0 {
		t.Errorf("the sealed schema holds %d values, %d with a private key in clear; want at least %d, none in clear", rows, clear, len(names))
	}
	r := ck(t, 30*time.Second, "status", "--storage", sealed, "--storage-password-file", pw, "--storage-key-file", keyFile)
	if r.code != 0 || strings.Count(r.stdout, ".m.test") != len(names) {
		t.Errorf("status on the encrypted copy: exit %d, want %d names:\n%s%s", r.code, len(names), r.stdout, r.stderr)
	}
	if r := ck(t, 30*time.Second, "status", "--storage", sealed, "--storage-password-file", pw); r.code == 0 || !strings.Contains(r.stderr, "--storage-key-file") {
		t.Errorf("status on the encrypted copy without the key: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestStorageMigrateRoundTrip: 20 certificates go from a directory to
// PostgreSQL, from there to Redis, and from there to a new directory and
// to a second PostgreSQL schema (so every direction between the three
// backends is taken by this test or TestStorageMigratePostgres).
// Without a storage key every value is byte for byte the one first
// stored, in PostgreSQL, in Redis and in the last directory. With one
// (--to-key-file into PostgreSQL, both key flags into Redis,
// --from-key-file back out) neither database holds a private key in clear
// and the last directory again holds the very bytes of the first: the
// decrypted values are identical. A proxy on the last directory serves
// every certificate with no new order.
func TestStorageMigrateRoundTrip(t *testing.T) {
	t.Parallel()
	m := newMigration(t)
	want := files(t, m.dir)
	pg := testsvc.Postgres(t)
	pw := writePasswordFile(t, pg)
	conn := pgConnect(t, pg)
	rs := testsvc.Redis(t)
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { rc.Close() })
	keyFile := filepath.Join(t.TempDir(), "storage.key")
	if err := os.WriteFile(keyFile, []byte(ck(t, 10*time.Second, "storage", "keygen").stdout), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, sealed := range []bool{false, true} {
		name := "plain"
		if sealed {
			name = "sealed"
		}
		t.Run(name, func(t *testing.T) {
			pgURL := pg.URL("postgres") + "&schema=" + name
			redisURL := "redis://" + rs.Addr() + "/0?prefix=" + name + ":"
			last := t.TempDir()
			var toKey, fromKey []string
			if sealed {
				toKey, fromKey = []string{"--to-key-file", keyFile}, []string{"--from-key-file", keyFile}
			}
			migrate := func(args ...string) {
				t.Helper()
				r := ck(t, 60*time.Second, append([]string{"storage", "migrate"}, args...)...)
				if r.code != 0 {
					t.Fatalf("storage migrate %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
				}
				t.Logf("%s", strings.TrimSpace(r.stderr))
			}
			start := time.Now()
			migrate(append([]string{"--from", m.dir, "--to", pgURL, "--to-password-file", pw}, toKey...)...)
			migrate(slices.Concat([]string{"--from", pgURL, "--from-password-file", pw, "--to", redisURL}, fromKey, toKey)...)
			migrate(append([]string{"--from", redisURL, "--to", last}, fromKey...)...)
			// And Redis → PostgreSQL, the one direction left.
			back := name + "_back"
			migrate(slices.Concat([]string{"--from", redisURL, "--to", pg.URL("postgres") + "&schema=" + back,
				"--to-password-file", pw}, fromKey, toKey)...)
			t.Logf("four migrations of %d keys: %s", len(want), time.Since(start).Round(time.Millisecond))

			for _, stage := range []struct {
				where string
				got   map[string]string
				clear bool // values are the first directory's bytes
			}{
				{"PostgreSQL", pgValues(t, conn, name), !sealed},
				{"Redis", redisValues(t, rc, name+":"), !sealed},
				{"PostgreSQL from Redis", pgValues(t, conn, back), !sealed},
				{"the last directory", files(t, last), true},
			} {
				if len(stage.got) != len(want) {
					t.Errorf("%s holds %d keys, want the %d of the first directory", stage.where, len(stage.got), len(want))
				}
				for k, v := range want {
					got, ok := stage.got[k]
					switch {
					case !ok:
						t.Errorf("%s lacks %s", stage.where, k)
					case stage.clear && got != v:
						t.Errorf("%s: %s differs from the first directory's:\n%s\nwant\n%s", stage.where, k, got, v)
					case !stage.clear && strings.Contains(got, "PRIVATE KEY"):
						t.Errorf("%s: %s holds a private key in clear", stage.where, k)
					}
				}
			}
			m.serve(t, "the last directory", "--storage", last)
		})
	}
}

// pgValues returns every key and value in schema's values table.
func pgValues(t *testing.T, conn *pgx.Conn, schema string) map[string]string {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT key, value FROM "+pgx.Identifier{schema, "values"}.Sanitize())
	if err != nil {
		t.Fatalf("reading schema %s: %v", schema, err)
	}
	m := make(map[string]string)
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		m[k] = string(v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading schema %s: %v", schema, err)
	}
	return m
}

// redisValues returns every key under prefix (without it) and its value,
// locks left out.
func redisValues(t *testing.T, rc *redis.Client, prefix string) map[string]string {
	t.Helper()
	keys, err := rc.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string)
	for _, k := range keys {
		if strings.HasPrefix(k, prefix+".locks/") {
			continue
		}
		v, err := rc.Get(t.Context(), k).Result()
		if err != nil {
			t.Fatalf("GET %s: %v", k, err)
		}
		m[strings.TrimPrefix(k, prefix)] = v
	}
	return m
}

// TestCheckConfigPostgres: --check-config accepts a postgres:// storage,
// in the configuration file or as --storage, as storage/open opens it, and
// refuses a scheme no storage has with a message naming the kinds there are.
func TestCheckConfigPostgres(t *testing.T) {
	t.Parallel()
	pg := testsvc.Postgres(t)
	url := pg.URL("postgres") + "&schema=ck"
	file := writeConfig(t, "allow: a.example\nbackend: 127.0.0.1:8080\nstorage: "+url+"\n")
	for _, args := range [][]string{
		{"proxy", "--check-config", "--config", file},
		{"proxy", "--check-config", "--allow", "a.example", "--backend", "127.0.0.1:8080", "--storage", url},
	} {
		r := ck(t, 30*time.Second, args...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "configuration OK" {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}

	bad := writeConfig(t, "allow: a.example\nbackend: 127.0.0.1:8080\nstorage: mongodb://127.0.0.1:1/ck\n")
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--config", bad)
	if r.code == 0 || strings.Contains(r.stdout, "configuration OK") {
		t.Fatalf("unknown scheme: exit %d, stdout %q", r.code, r.stdout)
	}
	for _, w := range []string{"config.yaml:3: storage:", `unknown scheme "mongodb"`, "postgres://", "redis://"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("unknown scheme: stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

// TestProxyStartsBeforePostgres: a proxy started while its PostgreSQL is
// down (a container beside its database, started first) starts, warns
// that the storage cannot be reached, and once the database is up
// obtains, stores and serves a certificate with no restart, as it does on
// a Redis that is down. It used to exit 1.
func TestProxyStartsBeforePostgres(t *testing.T) {
	t.Parallel()
	pg := testsvc.Postgres(t)
	pw := writePasswordFile(t, pg)
	pg.Stop()
	port := testsvc.FreePort(t)
	p := startProxyLogged(t, "--storage", pg.URL("postgres"), "--storage-password-file", pw, "--ca", "local",
		"--allow", "a.pg.test", "--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--backend", newBackend(t, "hi").url)
	if out := p.output(); !strings.Contains(out, "storage server cannot be reached") {
		t.Errorf("proxy on a PostgreSQL that is down: log %q; want the warning that the storage cannot be reached", out)
	}
	pg.Restart(t)
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = dialTLS(port, "a.pg.test"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("handshake after PostgreSQL came up: %v\n%s", err, p.output())
	}
	var n int
	if err := pgConnect(t, pg).QueryRow(t.Context(), `SELECT count(*) FROM certkeeper."values" WHERE key LIKE 'certificates/%a.pg.test%'`).Scan(&n); err != nil || n == 0 {
		t.Errorf("certificates for a.pg.test in PostgreSQL: %d (%v), want one", n, err)
	}
}

// dialTLS makes a TLS handshake for name with the proxy on 127.0.0.1:port
// (any certificate: the local CA's root is not trusted here).
func dialTLS(port int, name string) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port),
		&tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	return conn.Close()
}
