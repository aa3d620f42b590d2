package cli

import (
	"context"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// What a failed cluster test shows besides each node's log (which
// startLogged prints): the coordination state in the shared storage —
// locks with their owners and remaining leases, shared challenge answers,
// the subscribers of the change notices — and where every goroutine of
// every node and of Pebble was, from the stack dump a Go program writes
// on SIGQUIT. A stall (every handshake waiting out its deadline) is then
// visible as the lock or the call every node waits on.

// dumpOnFailure arranges for c's storage state and its nodes' goroutines
// to be logged if the test fails. It is registered after the nodes
// started, so it runs before their cleanups kill them.
func (c *cluster) dumpOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c.pg != nil {
			c.logPostgresState(ctx, t)
		} else {
			c.logRedisState(ctx, t)
		}
		for i, node := range c.nodes {
			logGoroutines(t, fmt.Sprintf("node %d", i), node.proc)
		}
		// Pebble's stacks follow its log, which testca prints.
		c.ca.Quit()
	})
}

// logRedisState logs the keys of the cluster's Redis with their
// remaining time to live: lock owners and shared challenge answers in
// full, other values by size only (certificate records hold private
// keys). Then the clients, the notice subscribers and the slow log.
func (c *cluster) logRedisState(ctx context.Context, t *testing.T) {
	rc := redis.NewClient(&redis.Options{Addr: c.redis.Addr(), MaxRetries: -1})
	defer rc.Close()
	var b strings.Builder
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil {
		t.Logf("Redis state: listing keys: %v", err)
		return
	}
	slices.Sort(keys)
	fmt.Fprintf(&b, "Redis state at %s: %d keys\n", time.Now().Format("15:04:05.000"), len(keys))
	for _, k := range keys {
		ttl := rc.PTTL(ctx, k).Val()
		switch {
		case strings.Contains(k, ".locks/"), strings.Contains(k, "challenges/"):
			fmt.Fprintf(&b, "  %s ttl=%s %q\n", k, ttl, rc.Get(ctx, k).Val())
		default:
			fmt.Fprintf(&b, "  %s ttl=%s %d bytes\n", k, ttl, rc.StrLen(ctx, k).Val())
		}
	}
	subs, err := rc.PubSubNumSub(ctx, "ck:.changes").Result()
	fmt.Fprintf(&b, "subscribers of ck:.changes: %v %v\n", subs, err)
	clients, err := rc.ClientList(ctx).Result()
	lines := strings.Split(strings.TrimSpace(clients), "\n")
	fmt.Fprintf(&b, "clients: %d %v\n", len(lines), err)
	for _, l := range lines {
		// Idle or blocked connections and subscribers are what a stall
		// would show; the rest is noise.
		if strings.Contains(l, "cmd=subscribe") || !strings.Contains(l, " idle=0 ") {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	if info, err := rc.Info(ctx, "clients", "stats").Result(); err == nil {
		for _, l := range strings.Split(info, "\n") {
			if strings.HasPrefix(l, "connected_clients") || strings.HasPrefix(l, "blocked_clients") ||
				strings.HasPrefix(l, "rejected_connections") || strings.HasPrefix(l, "total_commands_processed") ||
				strings.HasPrefix(l, "pubsub_channels") {
				fmt.Fprintf(&b, "  %s\n", strings.TrimSpace(l))
			}
		}
	}
	if slow, err := rc.SlowLogGet(ctx, 10).Result(); err == nil {
		for _, s := range slow {
			fmt.Fprintf(&b, "slowlog: %s %s %v\n", s.Time.Format("15:04:05.000"), s.Duration, s.Args)
		}
	}
	t.Log(b.String())
}

// logPostgresState logs the cluster's PostgreSQL locks with their
// remaining leases, the shared challenge answers, and the number of
// other values.
func (c *cluster) logPostgresState(ctx context.Context, t *testing.T) {
	conn := pgConnect(t, c.pg)
	var b strings.Builder
	fmt.Fprintf(&b, "PostgreSQL state at %s:\n", time.Now().Format("15:04:05.000"))
	rows, err := conn.Query(ctx, `SELECT name, token, (expires - clock_timestamp())::text FROM ck.locks ORDER BY name`)
	if err == nil {
		for rows.Next() {
			var name, token, left string
			if rows.Scan(&name, &token, &left) == nil {
				fmt.Fprintf(&b, "  lock %s token=%s expires in %s\n", name, token, left)
			}
		}
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		fmt.Fprintf(&b, "  reading the locks: %v\n", err)
	}
	rows, err = conn.Query(ctx, `SELECT key, convert_from(value, 'UTF8') FROM ck."values" WHERE key LIKE 'challenges/%' ORDER BY key`)
	if err == nil {
		for rows.Next() {
			var key, value string
			if rows.Scan(&key, &value) == nil {
				fmt.Fprintf(&b, "  %s %s\n", key, value)
			}
		}
		rows.Close()
	}
	var n int
	if conn.QueryRow(ctx, `SELECT count(*) FROM ck."values"`).Scan(&n) == nil {
		fmt.Fprintf(&b, "  %d values in all\n", n)
	}
	t.Log(b.String())
}

// logGoroutines makes a running node write its goroutines' stacks
// (SIGQUIT: the Go runtime dumps them and exits), logs them grouped by
// identical stack, most frequent first, keeps the full dump in a file
// that outlives the test, and cuts it from the node's log so that the
// log startLogged prints stays readable.
func logGoroutines(t *testing.T, who string, p *proxyProc) {
	if p.cmd.ProcessState != nil || p.cmd.Process.Signal(syscall.SIGQUIT) != nil {
		return // already ended, or no SIGQUIT (Windows)
	}
	kill := time.AfterFunc(10*time.Second, func() { _ = p.cmd.Process.Kill() })
	_ = p.cmd.Wait()
	kill.Stop()
	out := p.output()
	i := strings.Index(out, "SIGQUIT: quit")
	if i < 0 {
		t.Logf("%s wrote no goroutine dump on SIGQUIT", who)
		return
	}
	dump := out[i:]
	f, err := os.CreateTemp("", "certkeeper-"+strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()+"-"+who)+"-*.goroutines")
	if err == nil {
		_, err = f.WriteString(dump)
		f.Close()
	}
	if err == nil {
		_ = os.Truncate(p.logFile, int64(i))
		t.Logf("%s: full goroutine dump in %s", who, f.Name())
	}
	t.Logf("%s goroutines by stack:\n%s", who, groupGoroutines(dump))
}

var (
	// goroutineHeader is the first line of one goroutine in a dump:
	// "goroutine 42 gp=0xc000123 m=nil [select, 2 minutes]:".
	goroutineHeader = regexp.MustCompile(`^goroutine \d+ [^\[]*\[([^,\]]+)(?:, (\d+) minutes)?[^\]]*\]:`)
	// frameOffset is the end of a frame's file line: "+0x1d" and the
	// frame and stack pointers after it.
	frameOffset = regexp.MustCompile(` \+0x[0-9a-f]+.*$`)
	// callArgs are a frame's argument values, "(0xc000123, 0x4)", or the
	// goroutine that created this one, " in goroutine 7".
	callArgs = regexp.MustCompile(`\([^()]*\)$| in goroutine \d+$`)
)

// groupGoroutines groups the goroutines of a Go stack dump by state and
// stack (functions and lines, without argument values or the runtime's
// own frames), and returns each group once with its count and its
// longest wait, the largest first. Goroutines wholly inside the runtime
// (GC workers and the like) are left out.
func groupGoroutines(dump string) string {
	type group struct {
		state, stack string
		count, mins  int
	}
	groups := map[string]*group{}
	for _, block := range strings.Split(dump, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		m := goroutineHeader.FindStringSubmatch(lines[0])
		if m == nil {
			continue
		}
		var stack strings.Builder
		for i := 1; i+1 < len(lines); i += 2 {
			fn, at := callArgs.ReplaceAllString(lines[i], ""), frameOffset.ReplaceAllString(strings.TrimSpace(lines[i+1]), "")
			if strings.HasPrefix(strings.TrimPrefix(fn, "created by "), "runtime.") {
				continue
			}
			fmt.Fprintf(&stack, "    %s %s\n", fn, at)
		}
		if stack.Len() == 0 {
			continue
		}
		key := m[1] + "\n" + stack.String()
		g := groups[key]
		if g == nil {
			g = &group{state: m[1], stack: stack.String()}
			groups[key] = g
		}
		g.count++
		var mins int
		fmt.Sscan(m[2], &mins)
		g.mins = max(g.mins, mins)
	}
	sorted := slices.SortedFunc(maps.Values(groups), func(a, b *group) int {
		if a.count != b.count {
			return b.count - a.count
		}
		return strings.Compare(a.stack, b.stack)
	})
	var b strings.Builder
	for _, g := range sorted {
		fmt.Fprintf(&b, "%d goroutines [%s, up to %d minutes]:\n%s", g.count, g.state, g.mins, g.stack)
	}
	return b.String()
}
