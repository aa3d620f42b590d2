//go:build unix

package exec

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/libdns/libdns"
)

// TestCancelKillsProgramChildren: a program interrupted (its context
// ended) is killed with what it started: the sleep after its API call
// does not outlive certkeeper.
func TestCancelKillsProgramChildren(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	script := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsleep 30 & echo $! > \"$PID_FILE\"; wait\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := &Provider{Program: script, Env: []string{"PID_FILE=" + pidFile}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := p.AppendRecords(ctx, "a.test.", []libdns.Record{libdns.TXT{Name: "_acme-challenge", Text: "v"}})
		done <- err
	}()
	child := testsvc.ReadPID(t, pidFile, 10*time.Second)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("AppendRecords interrupted = nil, want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AppendRecords did not return within 10s of the cancel")
	}
	testsvc.WaitExited(t, child, 5*time.Second)
}
