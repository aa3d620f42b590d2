package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestUpgradeHoldsEachListenerOnce: after two upgrades (SIGUSR2) the
// serving process holds its listening socket once. The descriptors handed
// over were duplicated without close-on-exec, so each new process also
// kept the copy at its original number, never closed: a trial counted 11
// after ten upgrades, and an upgraded process's SIGTERM left the port
// accepting connections no one answered until it exited.
func TestUpgradeHoldsEachListenerOnce(t *testing.T) {
	dir, bin := copyBinary(t)
	port := testsvc.FreePort(t)
	cfgFile := filepath.Join(dir, "proxy.yaml")
	writeFileAtomic(t, cfgFile, fmt.Sprintf("tls_addr: 127.0.0.1:%d\nca: local\nallow: a.test\nstorage: %s\n", port, filepath.Join(dir, "state")))
	cmd, logs := startProxyAt(t, bin, "--config", cfgFile)
	proc := cmd.Process
	for i := range 2 {
		if err := proc.Signal(syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			proc = awaitHandOver(t, cmd, logs, "process", 45*time.Second)
			continue
		}
		var next int
		if !within(45*time.Second, func() bool {
			next = successorOf(logs(), proc.Pid)
			return next != 0
		}) {
			t.Fatalf("the upgraded process %d named no successor:\n%s", proc.Pid, logs())
		}
		p, err := os.FindProcess(next)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Kill() })
		proc = p
	}
	inode := listenInode(t, port)
	var held []string
	if !within(10*time.Second, func() bool {
		held = socketFDs(proc.Pid, inode)
		return len(held) == 1
	}) {
		t.Errorf("the process serving after two upgrades holds the listening socket of port %d %d times (descriptors %v), want once", port, len(held), held)
	}
}

// successorOf is the process that the upgraded process pid named as its
// successor in logs ("upgraded: process N serves now" after its own).
func successorOf(logs string, pid int) int {
	const said = "upgraded: process "
	var last int
	for _, line := range strings.Split(logs, "\n") {
		if i := strings.Index(line, said); i >= 0 {
			var n int
			if _, err := fmt.Sscanf(line[i+len(said):], "%d", &n); err == nil && n != pid {
				last = n
			}
		}
	}
	if last == 0 || strings.Count(logs, said) < 2 {
		return 0
	}
	return last
}

// listenInode is the inode of the socket listening on 127.0.0.1:port
// (/proc/net/tcp; state 0A is LISTEN).
func listenInode(t *testing.T, port int) string {
	t.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == local && f[3] == "0A" {
			return f[9]
		}
	}
	t.Fatalf("no socket listens on 127.0.0.1:%d in /proc/net/tcp", port)
	return ""
}

// socketFDs lists the descriptors of process pid that are the socket
// with this inode.
func socketFDs(pid int, inode string) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, _ := os.ReadDir(dir)
	var fds []string
	for _, e := range entries {
		if link, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && link == "socket:["+inode+"]" {
			fds = append(fds, e.Name())
		}
	}
	return fds
}
