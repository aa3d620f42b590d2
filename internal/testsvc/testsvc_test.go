package testsvc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestRedis(t *testing.T) {
	t.Parallel()
	r := Redis(t)
	ctx := t.Context()

	if err := redisPing(ctx, r.Addr()); err != nil {
		t.Fatalf("PING %s: %v", r.Addr(), err)
	}
	if got, want := redisDo(t, r.Addr(), "SET", "k", "v"), "+OK"; got != want {
		t.Fatalf("SET k v = %q, want %q", got, want)
	}
	if got, want := redisDo(t, r.Addr(), "CONFIG", "GET", "save"), "*2"; got != want {
		t.Fatalf("CONFIG GET save = %q, want %q", got, want)
	}

	r.Restart(t)
	if got, want := redisDo(t, r.Addr(), "EXISTS", "k"), ":0"; got != want {
		t.Fatalf("after Restart: EXISTS k = %q, want %q (no persistence)", got, want)
	}

	r.Stop()
	r.Stop() // a second Stop is harmless
	if err := redisPing(ctx, r.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("PING after Stop = %v, want connection refused", err)
	}
}

// redisDo sends one command and returns the first line of the reply without
// its CRLF.
func redisDo(t *testing.T, addr string, args ...string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dialing redis: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatalf("writing %v: %v", args, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading reply to %v: %v", args, err)
	}
	return strings.TrimSuffix(line, "\r\n")
}

func TestNamed(t *testing.T) {
	t.Parallel()
	n := Named(t, NamedOptions{Zones: []string{"a.test", "b.example"}})
	ctx := t.Context()

	if got, want := n.Zones(), []string{"a.test", "b.example"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Zones() = %v, want %v", got, want)
	}
	if host, _, _ := net.SplitHostPort(n.Addr()); host != "127.0.0.1" {
		t.Errorf("Addr() = %q, want 127.0.0.1:PORT", n.Addr())
	}

	tests := []struct {
		name, network, qname string
		qtype                uint16
		rcode, minAnswers    int
	}{
		{"SOA over UDP", "udp", "a.test", typeSOA, 0, 1},
		{"SOA over TCP", "tcp", "b.example", typeSOA, 0, 1},
		{"wildcard A", "udp", "www.a.test", 1, 0, 1},
		{"not our zone", "udp", "example.org", typeSOA, 5, 0}, // REFUSED: recursion is off
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := dnsQuery(ctx, tt.network, n.Addr(), tt.qname, tt.qtype)
			if err != nil {
				t.Fatalf("dnsQuery(%s %s, %d) = %v", tt.network, tt.qname, tt.qtype, err)
			}
			if a.rcode != tt.rcode || a.answers < tt.minAnswers {
				t.Errorf("dnsQuery(%s %s, %d) = rcode %d, %d answers; want rcode %d, at least %d answers",
					tt.network, tt.qname, tt.qtype, a.rcode, a.answers, tt.rcode, tt.minAnswers)
			}
		})
	}

	t.Run("nsupdate", func(t *testing.T) {
		nsupdate := LookPath(t, "nsupdate", "install Debian's bind9-dnsutils")
		host, port, _ := net.SplitHostPort(n.Addr())
		script := fmt.Sprintf("server %s %s\nzone a.test\nupdate add _acme-challenge.x.a.test. 60 TXT \"token\"\nsend\n", host, port)

		bad := exec.CommandContext(ctx, nsupdate, "-t", "5", "-y", n.Algorithm()+":"+n.KeyName()+":"+strings.Repeat("A", 44))
		bad.Stdin = strings.NewReader(script)
		if out, err := bad.CombinedOutput(); err == nil {
			t.Errorf("nsupdate with a wrong secret succeeded:\n%s", out)
		}

		good := exec.CommandContext(ctx, nsupdate, "-t", "5", "-y", n.Algorithm()+":"+n.KeyName()+":"+n.Secret())
		good.Stdin = strings.NewReader(script)
		if out, err := good.CombinedOutput(); err != nil {
			t.Fatalf("nsupdate with the server's key: %v\n%s", err, out)
		}
		a, err := dnsQuery(ctx, "tcp", n.Addr(), "_acme-challenge.x.a.test", typeTXT)
		if err != nil || a.rcode != 0 || a.answers != 1 {
			t.Fatalf("TXT _acme-challenge.x.a.test after update = %+v, %v; want 1 answer", a, err)
		}
	})

	n.Stop()
	if _, err := dnsQuery(ctx, "tcp", n.Addr(), "a.test", typeSOA); err == nil {
		t.Fatal("named answered after Stop")
	}
}

func TestNamedRejectsBadZone(t *testing.T) {
	// A zone name is pasted into named.conf: it must not be able to end a
	// string. Named calls Fatalf, which a subtest cannot observe from its
	// parent without a fake testing.TB, so check the validator directly.
	for _, z := range []string{`a.test"; }; include "/etc/passwd`, "A.test", "a.test.", "", "-a.test"} {
		if zoneName.MatchString(z) {
			t.Errorf("zoneName.MatchString(%q) = true, want false", z)
		}
	}
}

func TestProcessOutputAndStop(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex // guards lines
		lines []string
	)
	cmd := exec.Command("/bin/sh", "-c", "echo one; echo two >&2; printf three; sleep 60")
	p, err := StartProcess(t, cmd, func(line string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, line)
	})
	if err != nil {
		t.Fatalf("StartProcess: %v", err)
	}
	// The last line has no newline yet: wait until the shell has written it.
	for deadline := time.Now().Add(10 * time.Second); !strings.HasSuffix(p.Output(), "three"); {
		if time.Now().After(deadline) {
			t.Fatalf("output after 10s = %q, want it to end in three", p.Output())
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %v; the sleep child should die with its group", d)
	}
	// After Stop, the partial last line has been flushed to onLine.
	mu.Lock()
	defer mu.Unlock()
	if got, want := strings.Join(lines, "|"), "one|two|three"; got != want {
		t.Errorf("lines = %q, want %q", got, want)
	}
	if got, want := p.Output(), "one\ntwo\nthree"; got != want {
		t.Errorf("Output() = %q, want %q", got, want)
	}
}

func TestWaitReadyExited(t *testing.T) {
	t.Parallel()
	p, err := StartProcess(t, exec.Command("/bin/sh", "-c", "exit 3"), nil)
	if err != nil {
		t.Fatalf("StartProcess: %v", err)
	}
	err = p.WaitReady(10*time.Second, func(context.Context) error { return errors.New("not yet") })
	if !errors.Is(err, ErrExited) {
		t.Fatalf("WaitReady = %v, want ErrExited", err)
	}
}

func TestFreePortDistinct(t *testing.T) {
	seen := make(map[int]bool)
	for range 20 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("FreePort returned %d twice", p)
		}
		seen[p] = true
	}
}
