package filestore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/storage/filestore"
)

// The environment of a child that takes a lock and abandons it (see
// abandonChild).
const (
	envAbandonDir  = "CERTKEEPER_FILESTORE_ABANDON_DIR"
	envAbandonLock = "CERTKEEPER_FILESTORE_ABANDON_LOCK"
)

// abandonLease is the lease of the abandoned locks: far longer than any
// test waits, so that a lock taken in time was taken over, not expired.
const abandonLease = 10 * time.Minute

// abandonChild takes the lock called name in dir, as a holder does, and
// does not renew or release it. It prints "locked", then waits until its
// standard input is closed and exits without unlocking: for the parent
// it is a live holder until then, a dead one after.
func abandonChild(dir, name string) int {
	s := &filestore.Store{Dir: dir, LeaseTTL: abandonLease}
	if err := s.LockAbandoned(context.Background(), name); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// holderChild is a child process that holds a lock.
type holderChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startHolder starts a child that takes the lock called name in dir and
// returns once it holds it.
func startHolder(t *testing.T, dir, name string) *holderChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envAbandonDir+"="+dir, envAbandonLock+"="+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &holderChild{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("holder child printed %q, %v; want \"locked\"", line, err)
	}
	return c
}

// exit makes the child exit, holding its lock. If reap, it is waited for;
// if not, it stays a zombie until the test ends.
func (c *holderChild) exit(t *testing.T, reap bool) {
	t.Helper()
	c.stdin.Close()
	if reap {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("holder child: %v", err)
		}
		return
	}
	// Wait for the exit without reaping the child: it stays a zombie.
	stat := fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if data, err := os.ReadFile(stat); err == nil && zombieState(data) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder child did not exit within 10 s")
		}
	}
}

// zombieState reports whether data, the content of /proc/PID/stat, says
// the process is a zombie.
func zombieState(data []byte) bool {
	for i := len(data) - 1; i >= 0; i-- {
		if data[i] == ')' {
			return len(data) > i+2 && data[i+2] == 'Z'
		}
	}
	return false
}

// leaseFile returns the path of the one lease file of the lock called name
// (a name needing no escapes) and its content.
func leaseFile(t *testing.T, dir, name string) (string, map[string]any) {
	t.Helper()
	leases, err := filepath.Glob(filepath.Join(dir, ".locks", name, "*.lease"))
	if err != nil || len(leases) != 1 {
		t.Fatalf("lease files of %s = %q, %v; want one", name, leases, err)
	}
	data, err := os.ReadFile(leases[0])
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("lease file %s: %v", leases[0], err)
	}
	return leases[0], rec
}

// TestLockDeadHolder: a lock whose holder is known to be gone (same boot
// and PID namespace, and its PID is no longer that process) is taken over
// at once; in every other case the lease applies, here 10 minutes. Only
// Linux can tell; elsewhere the lease always applies.
func TestLockDeadHolder(t *testing.T) {
	t.Parallel()
	switch runtime.GOOS {
	case "js", "wasip1", "ios":
		t.Skipf("cannot start processes on %s", runtime.GOOS)
	}
	canTell := runtime.GOOS == "linux"
	for _, tt := range []struct {
		name     string
		exit     bool // the holder exits
		reap     bool // and is waited for
		edit     func(rec map[string]any)
		takeOver bool
	}{
		{name: "alive"},
		{name: "dead", exit: true, reap: true, takeOver: true},
		{name: "zombie", exit: true, takeOver: true},
		{name: "PID reused", edit: func(rec map[string]any) {
			// Another process now has the holder's PID: its start time
			// is not the recorded one.
			start, _ := rec["start"].(float64)
			rec["start"] = start + 1
		}, takeOver: true},
		{name: "dead on another boot", exit: true, reap: true, edit: func(rec map[string]any) {
			rec["boot"] = "00000000-0000-4000-8000-000000000000"
		}},
		{name: "dead in another PID namespace", exit: true, reap: true, edit: func(rec map[string]any) {
			rec["pidns"] = "pid:[1]"
		}},
		{name: "dead, no process identity", exit: true, reap: true, edit: func(rec map[string]any) {
			// A lease written by an older version, or on a system
			// that cannot tell.
			delete(rec, "start")
			delete(rec, "boot")
			delete(rec, "pidns")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name == "zombie" && !canTell {
				t.Skip("zombies are looked for in /proc")
			}
			const lock = "dead-holder"
			s := &filestore.Store{Dir: t.TempDir(), LeaseTTL: abandonLease}
			child := startHolder(t, s.Dir, lock)
			if tt.exit {
				child.exit(t, tt.reap)
			}
			if tt.edit != nil {
				path, rec := leaseFile(t, s.Dir, lock)
				tt.edit(rec)
				data, err := json.Marshal(rec)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.takeOver && canTell {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				start := time.Now()
				unlock, err := s.Lock(ctx, lock)
				if err != nil {
					t.Fatalf("Lock(%q) = %v, want it taken over at once from the gone holder", lock, err)
				}
				unlock()
				t.Logf("taken over in %v (lease %v)", time.Since(start).Round(time.Microsecond), abandonLease)
				return
			}
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			if unlock, err := s.Lock(ctx, lock); !errors.Is(err, context.DeadlineExceeded) {
				if err == nil {
					unlock()
				}
				t.Fatalf("Lock(%q) = %v, want context.DeadlineExceeded: the lease must apply", lock, err)
			}
			leaseFile(t, s.Dir, lock) // still there
		})
	}
}
