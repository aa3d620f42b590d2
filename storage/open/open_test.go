package open_test

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/open"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

func TestStorageOptionsErrors(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, spec string
		opts       open.Options
		want       string
	}{
		{"empty", "", open.Options{}, "no storage given"},
		{"unknown scheme", "ftp://u:s3cret@host/x", open.Options{}, `storage ftp://REDACTED@host/x: unknown scheme "ftp"`},
		{"password file for redis", "redis://127.0.0.1:1/0", open.Options{PasswordFile: pw, Names: open.Names{URL: "--storage", PasswordFile: "--pw"}},
			"--pw is for a postgres:// --storage"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := open.Storage(t.Context(), tt.spec, tt.opts)
			if _, ok := errors.AsType[*open.OptionsError](err); !ok || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Storage(%q) = %v, want an OptionsError containing %q", tt.spec, err, tt.want)
			}
		})
	}
}

// TestStorageKeyFile: a directory opens as it is; with a key file, private
// keys are sealed; a storage holding sealed keys refuses to open without
// the key file, and a key file refuses a storage whose keys are all in
// clear unless AllowClear.
func TestStorageKeyFile(t *testing.T) {
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	keyFile := filepath.Join(t.TempDir(), "storage.key")
	if err := os.WriteFile(keyFile, encrypted.GenerateKey(), 0o600); err != nil {
		t.Fatal(err)
	}
	key, _ := storage.CertificateKey("local", "a.test")

	clearDir := t.TempDir()
	if err := filestore.New(clearDir).Store(ctx, key, []byte(`{"key_pem":"-----BEGIN PRIVATE KEY-----"}`)); err != nil {
		t.Fatal(err)
	}
	st, closeFn, err := open.Storage(ctx, clearDir, open.Options{Logger: quiet})
	if err != nil {
		t.Fatalf("Storage(directory) = %v", err)
	}
	closeFn()
	if _, ok := st.(*filestore.Store); !ok {
		t.Errorf("Storage(directory) = %T, want *filestore.Store", st)
	}
	if _, _, err := open.Storage(ctx, clearDir, open.Options{KeyFile: keyFile, Logger: quiet}); !errors.Is(err, encrypted.ErrNotSealed) {
		t.Errorf("Storage(clear, KeyFile) = %v, want ErrNotSealed", err)
	}
	st, closeFn, err = open.Storage(ctx, clearDir, open.Options{KeyFile: keyFile, AllowClear: true, Logger: quiet})
	if err != nil {
		t.Fatalf("Storage(clear, KeyFile, AllowClear) = %v", err)
	}
	closeFn()
	if _, ok := st.(*encrypted.Store); !ok {
		t.Errorf("Storage with KeyFile = %T, want *encrypted.Store", st)
	}

	sealedDir := t.TempDir()
	if err := filestore.New(sealedDir).Store(ctx, key, []byte(encryptedValue(t, keyFile, key))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := open.Storage(ctx, sealedDir, open.Options{Logger: quiet}); err == nil || !strings.Contains(err.Error(), "is encrypted (certificates/") || !strings.Contains(err.Error(), "give key file, the key file the proxy or server on it uses") {
		t.Errorf("Storage(sealed, no KeyFile) = %v, want a refusal asking for the key file", err)
	}
	if _, _, err := open.Storage(ctx, sealedDir, open.Options{KeyFile: keyFile, Logger: quiet}); err != nil {
		t.Errorf("Storage(sealed, KeyFile) = %v", err)
	}
}

// encryptedValue stores a private key through an encrypted store on a
// scratch directory and returns the sealed value it wrote.
func encryptedValue(t *testing.T, keyFile, key string) string {
	t.Helper()
	keys, err := encrypted.ReadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	scratch := filestore.New(t.TempDir())
	if err := encrypted.New(scratch, keys).Store(t.Context(), key, []byte(`{"key_pem":"x"}`)); err != nil {
		t.Fatal(err)
	}
	v, err := scratch.Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !encrypted.IsSealed(v) {
		t.Fatalf("the encrypted store wrote %s in clear", key)
	}
	return string(v)
}

// TestCheck: Check accepts what Storage opens, every backend, without
// connecting (nothing listens on port 1), and refuses a scheme no storage
// has or a malformed URL without quoting a password.
func TestCheck(t *testing.T) {
	for _, spec := range []string{"", t.TempDir(), "relative/dir", "redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0",
		"redis+cluster://127.0.0.1:1,127.0.0.1:2", "postgres://ck@127.0.0.1:1/db?schema=ck", "postgresql://127.0.0.1:1/db"} {
		if err := open.Check(spec); err != nil {
			t.Errorf("Check(%q) = %v", spec, err)
		}
	}
	for _, tt := range []struct{ spec, want string }{
		{"ftp://u:s3cret@host/x", `ftp://REDACTED@host/x: unknown scheme "ftp"`},
		{"redis://127.0.0.1:1/notanumber", "redisstore"},
		{"postgres://ck:s3cret@127.0.0.1:1/db", "holds a password"},
		{"postgres://127.0.0.1:1/db?schema=No-Such", "schema"},
	} {
		err := open.Check(tt.spec)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Check(%q) = %v, want an error containing %q without the password", tt.spec, err, tt.want)
		}
	}
}

// TestRedisUnreachableWarning: a Redis that cannot be reached at start is
// named as such, not as a durability that could not be checked (trial 11:
// the advice to check persistence was off), and the storage still opens.
func TestRedisUnreachableWarning(t *testing.T) {
	var logs strings.Builder
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	st, closeFn, err := open.Storage(t.Context(), "redis://"+addr, open.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Storage(unreachable Redis) = %v, want it opened", err)
	}
	defer closeFn()
	_ = st
	if !strings.Contains(logs.String(), "storage server cannot be reached") || strings.Contains(logs.String(), "durability cannot be checked") {
		t.Errorf("logged:\n%s\nwant the server named unreachable", logs.String())
	}
}

// TestDurabilityCheckedWhenBack: a node started while its Redis is down
// checks the Redis's durability once it answers, and warns then that it
// keeps nothing (the chaos trial: a proxy started before a Redis without
// persistence never heard it, and lost every key at the Redis's next
// restart).
func TestDurabilityCheckedWhenBack(t *testing.T) {
	r := testsvc.Redis(t) // without persistence
	r.Stop()
	logs := &testsvc.Buffer{}
	_, closeFn, err := open.Storage(t.Context(), "redis://"+r.Addr(), open.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatalf("Storage(unreachable Redis) = %v, want it opened", err)
	}
	defer closeFn()
	const risk, back = "storage may lose certificates and keys", "storage server answers now: its durability was checked"
	if !strings.Contains(logs.String(), "storage server cannot be reached") || strings.Contains(logs.String(), risk) {
		t.Fatalf("logged at open:\n%s\nwant the server named unreachable, and no risk yet", logs.String())
	}
	r.Restart(t)
	// Checked again 1 s after the open, then 2 s after that, 4 s, ...
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), risk) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), risk) || !strings.Contains(logs.String(), back) {
		t.Errorf("logged after Redis answered:\n%s\nwant %q and %q", logs.String(), back, risk)
	}
}

// TestRedisLoginRefused: a Redis that refuses the login (a password
// missing from the URL) is refused at open, for a long-running caller
// that would otherwise start and fail every read and write until
// restarted; the error says to give the password.
func TestRedisLoginRefused(t *testing.T) {
	r := testsvc.Redis(t)
	admin := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer admin.Close()
	if err := admin.ConfigSet(t.Context(), "requirepass", "s3cret-Pw").Err(); err != nil {
		t.Fatal(err)
	}
	_, _, err := open.Storage(t.Context(), "redis://"+r.Addr(), open.Options{})
	if !errors.Is(err, redisstore.ErrAuthentication) || !strings.Contains(err.Error(), "redis://:PASSWORD@") {
		t.Fatalf("Storage(Redis wanting a password, none given) = %v, want it refused naming where the password goes", err)
	}
	st, closeFn, err := open.Storage(t.Context(), "redis://:s3cret-Pw@"+r.Addr(), open.Options{})
	if err != nil {
		t.Fatalf("Storage with the password: %v", err)
	}
	defer closeFn()
	if err := st.Store(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// TestSkipDurability: a short-lived caller's open logs nothing about the
// server's durability, not even that it cannot be reached.
func TestSkipDurability(t *testing.T) {
	var logs strings.Builder
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, closeFn, err := open.Storage(t.Context(), "redis://"+addr, open.Options{SkipDurability: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Storage(unreachable Redis) = %v, want it opened", err)
	}
	defer closeFn()
	if logs.Len() != 0 {
		t.Errorf("logged:\n%s\nwant nothing", logs.String())
	}
}

// TestWhere: a Redis URL's key prefix is shown beside the redacted URL
// (two clusters on one Redis differ only by it), and nothing else of the
// query.
func TestWhere(t *testing.T) {
	for spec, want := range map[string]string{
		"redis://127.0.0.1:6390/0?prefix=ck":                    `redis://127.0.0.1:6390/0 (prefix "ck")`,
		"redis://u:secret@10.0.0.5:6379/0?lease=5s&prefix=a:b":  `redis://REDACTED@10.0.0.5:6379/0 (prefix "a:b")`,
		"redis://10.0.0.5:6379/0?prefix=x&prefix=y":             `redis://10.0.0.5:6379/0 (prefix "y")`,
		"redis://10.0.0.5:6379/0?timeout=1s":                    "redis://10.0.0.5:6379/0",
		"redis://10.0.0.5:6379/0":                               "redis://10.0.0.5:6379/0",
		"redis://10.0.0.5:6379/0?prefix=p@ss":                   "redis://REDACTED",
		"postgres://db.example/certs?prefix=x":                  "postgres://db.example/certs",
		"postgres://db.example/certs?schema=ck&sslmode=disable": `postgres://db.example/certs (schema "ck")`,
		"/var/lib/certkeeper":                                   "/var/lib/certkeeper",
	} {
		if got := open.Where(spec); got != want {
			t.Errorf("Where(%q) = %q, want %q", spec, got, want)
		}
	}
}

func TestHoldsPassword(t *testing.T) {
	for spec, want := range map[string]bool{
		"redis://:s3cret@127.0.0.1:6379/0":                        true,
		"redis://user:s3cret@127.0.0.1:6379/0":                    true,
		"redis+sentinel://s1:26379/m?sentinel_password=s3cret":    true,
		"postgres://certkeeper@db/certkeeper?sslmode=verify-full": false,
		"redis://127.0.0.1:6379/0?prefix=a:":                      false,
		"/var/lib/certkeeper":                                     false,
		"redis://user@127.0.0.1:6379/0":                           false,
	} {
		if got := open.HoldsPassword(spec); got != want {
			t.Errorf("HoldsPassword(%q) = %v, want %v", spec, got, want)
		}
	}
}
