package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const postgresHint = "install Debian's postgresql (apt-get install --no-install-recommends postgresql)"

// PostgresUser is the superuser of every PostgresServer.
const PostgresUser = "postgres"

// PostgresOptions configures a PostgresServer. The zero value is a server
// with PostgreSQL's durable defaults.
type PostgresOptions struct {
	// FsyncOff starts the server with -c fsync=off, the setting that
	// trades durability for speed and that certkeeper warns about.
	FsyncOff bool
}

// PostgresServer is a PostgreSQL cluster made by initdb and run by
// postgres for one test: listening on 127.0.0.1 only (and a Unix socket in
// its directory), its superuser PostgresUser authenticating with a random
// password over TCP (SCRAM), its data in a fresh temporary directory.
//
// initdb and postgres refuse to run as root, and CI runs as root: there
// both run as the user nobody, which owns the directory.
type PostgresServer struct {
	addr     string
	password string
	bin      string  // directory of initdb and postgres
	dir      string  // sockets; data in dir/data
	cred     *userID // nil: run as ourselves
	opts     PostgresOptions

	mu   sync.Mutex // guards proc
	proc *Process
}

// Postgres starts a PostgreSQL server with default options (see
// [PostgresWith]).
func Postgres(t testing.TB) *PostgresServer {
	t.Helper()
	return PostgresWith(t, PostgresOptions{})
}

// PostgresWith runs initdb and starts postgres on a free 127.0.0.1 port,
// and waits until it accepts connections. The server is shut down and its
// files removed when the test ends. If PostgreSQL is not installed,
// PostgresWith skips the test (fails it under CI=true).
func PostgresWith(t testing.TB, o PostgresOptions) *PostgresServer {
	t.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		Unavailable(t, "PostgreSQL", postgresHint, err)
	}
	cred, err := unprivileged()
	if err != nil {
		Unavailable(t, "an unprivileged user to run PostgreSQL", "run the tests as a user other than root, or create the user nobody", err)
	}
	dir, err := os.MkdirTemp("", "ckpg")
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var pw [12]byte
	rand.Read(pw[:])
	s := &PostgresServer{password: hex.EncodeToString(pw[:]), bin: bin, dir: dir, cred: cred, opts: o}
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(s.password+"\n"), 0o600); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	if cred != nil {
		for _, f := range []string{dir, pwFile} {
			if err := os.Chown(f, int(cred.uid), int(cred.gid)); err != nil {
				t.Fatalf("testsvc: giving %s to uid %d: %v", f, cred.uid, err)
			}
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"-D", data, "-U", PostgresUser, "--pwfile", pwFile,
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin", "LC_ALL=C"}
	runAs(initdb, cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("testsvc: initdb: %v\n%s", err, out)
	}
	os.Remove(pwFile)

	err = RetryPorts(func() error {
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
		return s.start(t)
	})
	if err != nil {
		t.Fatalf("testsvc: starting postgres: %v", err)
	}
	return s
}

func (s *PostgresServer) start(t testing.TB) error {
	t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	args := []string{"-D", filepath.Join(s.dir, "data"), "-k", s.dir, "-p", port, "-h", "127.0.0.1",
		"-c", "logging_collector=off", "-c", "max_connections=100"}
	if s.opts.FsyncOff {
		args = append(args, "-c", "fsync=off")
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"HOME=" + s.dir, "PATH=/usr/bin:/bin", "LC_ALL=C"}
	runAs(cmd, s.cred)
	var ready atomic.Bool
	p, err := StartProcess(t, cmd, func(line string) {
		if strings.Contains(line, "database system is ready to accept connections") {
			ready.Store(true)
		}
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	// A fast shutdown (SIGINT) removes the server's shared memory, which
	// a SIGKILL would leave behind; the cleanup of StartProcess, which runs
	// after this one, kills whatever is left.
	t.Cleanup(func() {
		interrupt(p)
		select {
		case <-p.Done():
		case <-time.After(5 * time.Second):
		}
	})
	return p.WaitReady(readyTimeout, func(ctx context.Context) error {
		if !ready.Load() {
			return errors.New("postgres has not logged that it is ready")
		}
		return nil
	})
}

// Addr returns the server's host:port, e.g. "127.0.0.1:40123".
func (s *PostgresServer) Addr() string { return s.addr }

// Password returns the password of PostgresUser.
func (s *PostgresServer) Password() string { return s.password }

// URL returns a postgres:// URL of database db for PostgresUser, without
// the password and without TLS: "postgres://postgres@127.0.0.1:40123/db?sslmode=disable".
func (s *PostgresServer) URL(db string) string {
	return "postgres://" + PostgresUser + "@" + s.addr + "/" + db + "?sslmode=disable"
}

// Stop kills the server (SIGKILL), so that tests can see what a dead
// PostgreSQL does to their code. It may be called more than once.
func (s *PostgresServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.proc.Stop()
}

// Restart kills the server and starts it again on the same address and
// data, as after a crash: what was committed is still there. It fails the
// test if the address has been taken in between.
func (s *PostgresServer) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(t); err != nil {
		t.Fatalf("testsvc: restarting postgres on %s: %v", s.addr, err)
	}
}

// postgresBinDir finds the directory of initdb and postgres: pg_config's
// bindir if it has them, else the newest /usr/lib/postgresql/*/bin (Debian
// puts only the client and a wrapper on PATH).
func postgresBinDir() (string, error) {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(found, func(i, j int) bool { return pgVersion(found[i]) > pgVersion(found[j]) })
	dirs = append(dirs, found...)
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("no initdb and postgres in pg_config --bindir or /usr/lib/postgresql/*/bin: %w", exec.ErrNotFound)
}

// pgVersion is the major version in /usr/lib/postgresql/VERSION/bin.
func pgVersion(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
