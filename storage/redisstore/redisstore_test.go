package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/redisstore"
	"github.com/certkeeper/certkeeper/storage/storagetest"
)

// Lease durations in tests: long enough that a renewal delayed by a loaded
// machine running -race does not lose a lease, short enough to wait for.
const (
	suiteTTL   = time.Second
	processTTL = time.Second
)

// openProcess is the storagetest.Opener of the process tests: config is
// the Redis URL.
func openProcess(config string) (storage.Storage, error) {
	s, err := redisstore.Open(config)
	if err != nil {
		return nil, err
	}
	s.LeaseTTL = processTTL
	return s, nil
}

func TestMain(m *testing.M) { storagetest.Main(m, openProcess) }

// prefixes makes every store of the suite empty on a shared server.
var prefixes atomic.Int64

func newPrefix() string { return fmt.Sprintf("test%d:", prefixes.Add(1)) }

// The suites mostly wait for leases to expire: they run in parallel.

func TestConformance(t *testing.T) {
	t.Parallel()
	r := testsvc.Redis(t)
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		s, err := redisstore.Open("redis://" + r.Addr() + "/0?prefix=" + newPrefix())
		if err != nil {
			t.Fatal(err)
		}
		s.LeaseTTL = suiteTTL
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	c := testsvc.RedisCluster(t, 3)
	url := "redis+cluster://" + strings.Join(c.Addrs(), ",") + "/?prefix="
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		s, err := redisstore.Open(url + newPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Client.(*redis.ClusterClient); !ok {
			t.Fatalf("Open(%q).Client is a %T, want a *redis.ClusterClient", url, s.Client)
		}
		s.LeaseTTL = suiteTTL
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestProcesses(t *testing.T) {
	t.Parallel()
	r := testsvc.Redis(t)
	storagetest.RunProcesses(t, storagetest.Backend{
		Open:     openProcess,
		Config:   "redis://" + r.Addr() + "/0?prefix=" + newPrefix(),
		LeaseTTL: processTTL,
	})
}

// TestClusterListSpansMasters checks that List on a Cluster finds keys
// stored on every master, not only on one.
func TestClusterListSpansMasters(t *testing.T) {
	t.Parallel()
	c := testsvc.RedisCluster(t, 3)
	s, err := redisstore.Open("redis+cluster://" + strings.Join(c.Addrs(), ",") + "?prefix=" + newPrefix())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	var want []string
	for i := range 60 {
		k := fmt.Sprintf("certificates/x/n%02d.test.json", i)
		want = append(want, k)
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	cc := s.Client.(*redis.ClusterClient)
	var masters atomic.Int32 // ForEachMaster runs fn concurrently
	err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if n > 0 {
			masters.Add(1)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := masters.Load(); got != 3 {
		t.Errorf("keys on %d masters, want all 3 (the test's keys should spread)", got)
	}
	got, err := s.List(ctx, "certificates/")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("List = %d keys %q, want the %d stored", len(got), got, len(want))
	}
}

// TestGlobCharacters checks that keys and prefixes with glob characters
// are matched literally by List.
func TestGlobCharacters(t *testing.T) {
	t.Parallel()
	r := testsvc.Redis(t)
	// The store prefix holds glob characters too.
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: r.Addr()}), "glob*?[a-z]^-:")
	defer s.Close()
	other := redisstore.New(s.Client, "globX?[b]^-:")
	ctx := t.Context()
	keys := []string{
		"a*", "a*b", "ab", "a?", "a?c", "axc", "a[b]", "a[b]c", "ab]c", "ac", "a[", "a]", "a^", "a-z", "a[a-z]", "ay",
		"d*/x", "d?/x", "d[/x", "dd/x", "certificates/x/wildcard_a.test.json",
	}
	for _, k := range keys {
		if err := storage.ValidateKey(k); err != nil {
			t.Fatalf("test key %q is invalid: %v", k, err)
		}
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
		if err := other.Store(ctx, k, []byte("other")); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"", "a", "a*", "a?", "a[", "a[b", "a[b]", "a]", "a^", "a-", "a[a-z", "d*", "d*/", "d?/", "d[/", "dd", "x*", "*", "?", "["} {
		var want []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		got, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatalf("List(%q) = %v", prefix, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
	for _, k := range keys {
		v, err := s.Load(ctx, k)
		if err != nil || string(v) != k {
			t.Errorf("Load(%q) = %q, %v; want %q", k, v, err, k)
		}
	}
}

func TestGlobEscape(t *testing.T) {
	for in, want := range map[string]string{
		"":              "",
		"plain/a.json":  "plain/a.json",
		"a*b?c[d]e":     `a\*b\?c\[d\]e`,
		`back\slash`:    `back\\slash`,
		"^-":            `\^\-`,
		"certkeeper:x/": "certkeeper:x/",
	} {
		if got := redisstore.GlobEscape(in); got != want {
			t.Errorf("globEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpenURL(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want redisstore.ParsedURL
	}{
		{"redis://127.0.0.1:6379", redisstore.ParsedURL{Mode: "standalone", Addrs: []string{"127.0.0.1:6379"}, Prefix: "certkeeper:", Timeout: 2 * time.Second}},
		{"redis://localhost", redisstore.ParsedURL{Mode: "standalone", Addrs: []string{"localhost:6379"}, Prefix: "certkeeper:", Timeout: 2 * time.Second}},
		{"redis://u:p%40ss@h:1/3?prefix=prod:&timeout=500ms", redisstore.ParsedURL{Mode: "standalone", User: "u", Password: "p@ss", Addrs: []string{"h:1"}, DB: 3, Prefix: "prod:", Timeout: 500 * time.Millisecond}},
		{"redis://:secret@h:1/", redisstore.ParsedURL{Mode: "standalone", Password: "secret", Addrs: []string{"h:1"}, Prefix: "certkeeper:", Timeout: 2 * time.Second}},
		{"rediss://h:6380/2", redisstore.ParsedURL{Mode: "standalone", TLS: true, Addrs: []string{"h:6380"}, DB: 2, Prefix: "certkeeper:", Timeout: 2 * time.Second}},
		{"redis://[::1]:7000", redisstore.ParsedURL{Mode: "standalone", Addrs: []string{"[::1]:7000"}, Prefix: "certkeeper:", Timeout: 2 * time.Second}},
		{"redis://[::1]", redisstore.ParsedURL{Mode: "standalone", Addrs: []string{"[::1]:6379"}, Prefix: "certkeeper:", Timeout: 2 * time.Second}},
		{"redis+cluster://a:7000,b:7001,c/?prefix=p:", redisstore.ParsedURL{Mode: "cluster", Addrs: []string{"a:7000", "b:7001", "c:6379"}, Prefix: "p:", Timeout: 2 * time.Second}},
		{"rediss+cluster://u:pw@a:7000", redisstore.ParsedURL{Mode: "cluster", TLS: true, User: "u", Password: "pw", Addrs: []string{"a:7000"}, Prefix: "certkeeper:", Timeout: 2 * time.Second}},
		{"redis+sentinel://s1,s2:5000/mymaster/4?sentinel_password=sp", redisstore.ParsedURL{Mode: "sentinel", Master: "mymaster", Addrs: []string{"s1:26379", "s2:5000"}, DB: 4, Prefix: "certkeeper:", Timeout: 2 * time.Second, SentinelPassword: "sp"}},
		{"redis+sentinel://u:pw@s1/m?sentinel_user=su", redisstore.ParsedURL{Mode: "sentinel", Master: "m", User: "u", Password: "pw", Addrs: []string{"s1:26379"}, Prefix: "certkeeper:", Timeout: 2 * time.Second, SentinelUser: "su"}},
		{"redis://h?prefix=", redisstore.ParsedURL{Mode: "standalone", Addrs: []string{"h:6379"}, Prefix: "", Timeout: 2 * time.Second}},
		{"redis://h?lease=3s", redisstore.ParsedURL{Mode: "standalone", Addrs: []string{"h:6379"}, Prefix: "certkeeper:", Timeout: 2 * time.Second, Lease: 3 * time.Second}},
	} {
		t.Run(tt.url, func(t *testing.T) {
			got, err := redisstore.ParseURL(tt.url)
			if err != nil {
				t.Fatalf("parse = %v", err)
			}
			if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", tt.want) {
				t.Errorf("parse = %+v\nwant    %+v", *got, tt.want)
			}
			s, err := redisstore.Open(tt.url)
			if err != nil {
				t.Fatalf("Open = %v", err)
			}
			s.Close()
		})
	}
}

func TestOpenURLErrors(t *testing.T) {
	const secret = "Sup3rSecret"
	for _, tt := range []struct {
		url, want string
	}{
		{"127.0.0.1:6379", "no scheme"},
		{"http://u:" + secret + "@h", "unknown URL scheme"},
		{"redis://u:" + secret + "@", "no host"},
		{"redis://u:" + secret + "@a:1,b:2", "redis+cluster://"},
		{"redis://u:" + secret + "@h:notaport", "invalid port"},
		{"redis://u:" + secret + "@h:99999", "invalid port"},
		{"redis://u:" + secret + "@h/x", "not a number"},
		{"redis://u:" + secret + "@h/1/2", "unexpected path"},
		{"redis://u:" + secret + "@h?bogus=" + secret, "unknown parameter"},
		{"redis://u:" + secret + "@h?timeout=" + secret, "timeout"},
		{"redis://u:" + secret + "@h?lease=10ms", "lease"},
		{"redis://u:" + secret + "@h#frag", "fragment"},
		{"redis://u:" + secret + "%zz@h", "percent-encoding"},
		{"redis://u:" + secret + "@h?sentinel_password=" + secret, "needs redis+sentinel"},
		{"redis+cluster://u:" + secret + "@a,b/3", "only database 0"},
		{"redis+sentinel://u:" + secret + "@s1,s2", "no master"},
		{"redis+sentinel://u:" + secret + "@s1/m/x?sentinel_password=" + secret, "not a number"},
		{"redis://u:" + secret + "@h:1%zz?" + secret, "invalid"},
		{"redis://u:" + secret + "@h?%zz" + secret, "invalid query"},
	} {
		t.Run(tt.url, func(t *testing.T) {
			_, err := redisstore.Open(tt.url)
			if err == nil {
				t.Fatalf("Open succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open = %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Open = %v: the error shows the password", err)
			}
		})
	}
}

// TestRedisDown checks that operations on a stopped Redis fail quickly
// with an error naming Redis and its address, and work again once it is
// back.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	r := testsvc.Redis(t)
	s, err := redisstore.Open("redis://" + r.Addr() + "/0?prefix=" + newPrefix())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	for _, op := range []struct {
		name string
		do   func(context.Context) error
	}{
		{"Load", func(c context.Context) error { _, err := s.Load(c, "k"); return err }},
		{"Store", func(c context.Context) error { return s.Store(c, "k", []byte("w")) }},
		{"Delete", func(c context.Context) error { return s.Delete(c, "k") }},
		{"List", func(c context.Context) error { _, err := s.List(c, ""); return err }},
		{"Lock", func(c context.Context) error {
			unlock, err := s.Lock(c, "issue/down.test")
			if err == nil {
				unlock()
			}
			return err
		}},
	} {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		start := time.Now()
		err := op.do(c)
		d := time.Since(start)
		cancel()
		switch {
		case err == nil:
			t.Errorf("%s with Redis stopped succeeded", op.name)
		case d > 5*time.Second:
			t.Errorf("%s with Redis stopped took %v, want under 5s: %v", op.name, d, err)
		case !strings.Contains(err.Error(), "Redis at "+r.Addr()):
			t.Errorf("%s with Redis stopped = %v, want an error naming Redis at %s", op.name, err, r.Addr())
		case errors.Is(err, fs.ErrNotExist):
			t.Errorf("%s with Redis stopped = %v, which claims the key is absent", op.name, err)
		default:
			t.Logf("%s failed after %v: %v", op.name, d.Round(time.Millisecond), err)
		}
	}
	r.Restart(t)
	if err := s.Store(ctx, "k", []byte("back")); err != nil {
		t.Fatalf("Store after Redis restarted = %v", err)
	}
}

// TestUnreachableOpen checks that a Store from Open on an address where
// nothing listens fails fast.
func TestUnreachableOpen(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t))
	s, err := redisstore.Open("redis://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = s.Load(t.Context(), "k")
	if err == nil || !strings.Contains(err.Error(), "Redis at "+addr) || time.Since(start) > 5*time.Second {
		t.Errorf("Load on nothing = %v after %v; want an error naming Redis at %s within 5s", err, time.Since(start), addr)
	}
}

// renewFrame is the stack frame of a lock's renewal goroutine.
const renewFrame = "lease.Held.renew("

func renewers() int { return storagetest.Goroutines(renewFrame) }

func waitRenewers(t *testing.T, want int) { storagetest.WaitGoroutines(t, renewFrame, want) }

// TestRenewalGoroutineEnds checks that every lock's renewal goroutine
// ends when it is unlocked, and that the lease key is gone. It must not
// run in parallel with other tests that hold locks.
func TestRenewalGoroutineEnds(t *testing.T) {
	r := testsvc.Redis(t)
	prefix := newPrefix()
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: r.Addr()}), prefix)
	defer s.Close()
	s.LeaseTTL = 400 * time.Millisecond
	base := renewers()
	var unlocks []func()
	for _, name := range []string{"a", "b", "c/d"} {
		unlock, err := s.Lock(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		unlocks = append(unlocks, unlock)
	}
	waitRenewers(t, base+3)
	time.Sleep(time.Second) // a few renewals, past the lease
	n, err := s.Client.Exists(t.Context(), prefix+".locks/a", prefix+".locks/b", prefix+".locks/c/d").Result()
	if err != nil || n != 3 {
		t.Errorf("%d lease keys after 3 leases' time, %v; want 3: renewal failed", n, err)
	}
	for _, unlock := range unlocks {
		unlock()
		unlock()
	}
	waitRenewers(t, base)
	keys, err := s.Client.Keys(t.Context(), prefix+"*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("Redis holds %q, %v after every unlock; want nothing", keys, err)
	}
}

// logRecorder is a slog.Handler that keeps the messages it handles.
type logRecorder struct {
	msgs chan string
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.msgs <- r.Message:
	default:
	}
	return nil
}

// TestLostLease checks that a holder whose lease was taken over stops
// renewing, logs it, and does not release the new holder's lease.
func TestLostLease(t *testing.T) {
	t.Parallel()
	r := testsvc.Redis(t)
	prefix := newPrefix()
	rec := &logRecorder{msgs: make(chan string, 16)}
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: r.Addr()}), prefix)
	defer s.Close()
	s.LeaseTTL = 300 * time.Millisecond
	s.Logger = slog.New(rec)
	unlock, err := s.Lock(t.Context(), "x")
	if err != nil {
		t.Fatal(err)
	}
	// Someone else takes the lease over (as after an expiry).
	key := prefix + ".locks/x"
	if err := s.Client.Set(t.Context(), key, "intruder", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-rec.msgs:
		if !strings.Contains(msg, "lost") {
			t.Errorf("logged %q, want a lost lease", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no log of the lost lease")
	}
	unlock()
	if v, err := s.Client.Get(t.Context(), key).Result(); err != nil || v != "intruder" {
		t.Errorf("lease after the old holder's unlock = %q, %v; want the intruder's", v, err)
	}
}

func TestServerDescription(t *testing.T) {
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: "h:1", Password: "pw"}), "")
	defer s.Close()
	if got, want := s.Server(), "Redis at h:1"; got != want {
		t.Errorf("Server() = %q, want %q", got, want)
	}
	c, err := redisstore.Open("redis+cluster://u:pw@a:1,b:2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, want := c.Server(), "Redis Cluster at a:1,b:2"; got != want {
		t.Errorf("Server() = %q, want %q", got, want)
	}
	if s.Prefix != "" || c.Prefix != "certkeeper:" {
		t.Errorf("prefixes %q, %q; want \"\" (meaning the default) and the default", s.Prefix, c.Prefix)
	}
}

// TestOpenURLPasswordCharacters: a password holding any of / ? # @ : %
// unencoded never reaches an error, from Open or from an operation on the
// unreachable server, in any URL form.
func TestOpenURLPasswordCharacters(t *testing.T) {
	for _, c := range strings.Split("/?#@:%", "") {
		for _, u := range []string{
			"redis://user:Sup3r" + c + "Secr3t@127.0.0.1:1/0",
			"rediss://:Sup3r" + c + "Secr3t@127.0.0.1:1",
			"redis+cluster://user:Sup3r" + c + "Secr3t@127.0.0.1:1,127.0.0.1:2",
			"redis+sentinel://user:Sup3r" + c + "Secr3t@127.0.0.1:1/mymaster/0",
		} {
			s, err := redisstore.Open(u)
			if err == nil {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				_, err = s.Load(ctx, "k")
				cancel()
				s.Close()
			}
			if err == nil {
				t.Fatalf("%s: Load from an unreachable Redis succeeded", u)
			}
			if msg := strings.ToLower(err.Error()); strings.Contains(msg, "sup3r") || strings.Contains(msg, "secr3t") || strings.Contains(msg, "%se") {
				t.Errorf("password with %q: error %q shows the password", c, err)
			}
		}
	}
}

// TestCheckDurability: a Redis with neither RDB snapshots nor AOF is a
// risk naming both settings; with appendonly yes it is not; a user to
// whom CONFIG is refused cannot check, and says so.
func TestCheckDurability(t *testing.T) {
	t.Parallel()
	r := testsvc.Redis(t) // started with save "" and appendonly no
	s, err := redisstore.Open("redis://" + r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	risks, err := s.CheckDurability(ctx)
	if err != nil || len(risks) != 1 || !strings.Contains(risks[0], `save ""`) || !strings.Contains(risks[0], "appendonly no") {
		t.Errorf("CheckDurability without persistence = %q, %v; want one risk naming save and appendonly", risks, err)
	}

	if err := s.Client.Do(ctx, "ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "&*", "+@all", "-config").Err(); err != nil {
		t.Fatal(err)
	}
	limited, err := redisstore.Open("redis://noconfig:pw@" + r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close()
	if risks, err := limited.CheckDurability(ctx); err == nil || !strings.Contains(err.Error(), "CONFIG GET") {
		t.Errorf("CheckDurability as a user without CONFIG = %q, %v; want an error naming CONFIG GET", risks, err)
	}

	if err := s.Client.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if risks, err := s.CheckDurability(ctx); err != nil || len(risks) != 0 {
		t.Errorf("CheckDurability with appendonly yes = %q, %v; want no risks", risks, err)
	}
}

// TestAuthentication: a Redis that wants a password refuses a URL without
// one (NOAUTH) or with a wrong one (WRONGPASS); the error wraps
// ErrAuthentication, which says to give the password in the URL, and
// keeps Redis's own words. The right one works.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	r := testsvc.Redis(t)
	admin := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer admin.Close()
	// Connections already made stay authenticated: admin can still talk.
	if err := admin.ConfigSet(t.Context(), "requirepass", "s3cret-Pw").Err(); err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]string{
		"redis://" + r.Addr() + "/0":               "NOAUTH",
		"redis://:wrong@" + r.Addr() + "/0":        "WRONGPASS",
		"redis://bob:s3cret-Pw@" + r.Addr() + "/0": "WRONGPASS",
		"redis://:s3cret-Pw@" + r.Addr() + "/0":    "",
	} {
		s, err := redisstore.Open(url)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Load(t.Context(), "k")
		s.Close()
		switch {
		case want == "" && !errors.Is(err, fs.ErrNotExist):
			t.Errorf("Load with the right password: %v, want fs.ErrNotExist", err)
		case want != "" && (!errors.Is(err, redisstore.ErrAuthentication) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret")):
			t.Errorf("Load through %s: %v, want ErrAuthentication with %s and no password", url, err, want)
		}
	}
}

// TestZeroStore: a Store without a Client (its zero value) fails every
// operation with an error that says how to make one, rather than a nil
// pointer's panic (a library trial's program crashed).
func TestZeroStore(t *testing.T) {
	var s redisstore.Store
	ctx := t.Context()
	_, errLoad := s.Load(ctx, "a")
	_, errList := s.List(ctx, "")
	_, errLock := s.Lock(ctx, "a")
	_, errSub := s.Subscribe(ctx)
	_, errDur := s.CheckDurability(ctx)
	for i, err := range []error{errLoad, s.Store(ctx, "a", nil), s.Delete(ctx, "a"), errList, errLock, s.Notify(ctx, "a"), errSub, errDur} {
		if !errors.Is(err, redisstore.ErrNoClient) {
			t.Errorf("operation %d on a zero Store: %v, want the error that says how to make one", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a zero Store: %v", err)
	}
}
