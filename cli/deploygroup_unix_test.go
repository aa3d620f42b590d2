//go:build unix

package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDeployGroupMember: a user may give the files only a group it is a
// member of; deploy says so, naming the way to become one, before it
// writes anything. As root the run is made as nobody (uid and gid 65534),
// which may give its own group.
func TestDeployGroupMember(t *testing.T) {
	if groups, _ := os.Getgroups(); os.Geteuid() != 0 && (os.Getegid() == 0 || slices.Contains(groups, 0)) {
		t.Skip("this user is in group 0, so it may give every group the test would refuse: run as root or as another user")
	}
	dir, err := os.MkdirTemp("", "ck-deploy-group")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	st := filepath.Join(dir, "st")
	issueLocal(t, st, "g.test")
	bin := filepath.Join(dir, "certkeeper")
	copyFile(t, binary, bin)
	if err := os.Chmod(dir, 0o777); err != nil { // nobody writes the deployment beside the storage
		t.Fatal(err)
	}
	if os.Geteuid() == 0 { // the storage becomes nobody's, as it would be the deploying user's
		if err := filepath.Walk(st, func(p string, _ os.FileInfo, err error) error {
			if err == nil {
				err = os.Lchown(p, 65534, 65534)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	run := func(group string) (int, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "deploy", "--format", "pem", "--out-dir", filepath.Join(dir, "out"), "--storage", st, "--group", group)
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), stderr.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, stderr.String()
	}
	if code, stderr := run("0"); code != 2 || !strings.Contains(stderr, "is not a member of group 0, so it may not give files that group: add it to the group") {
		t.Errorf("deploy --group 0 by a user not in it: exit %d, want 2 and the reason\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("the refused deploy made its directory: %v", err)
	}
	if os.Geteuid() != 0 {
		return
	}
	if code, stderr := run("65534"); code != 0 {
		t.Errorf("deploy --group 65534 by nobody (its own group): exit %d\n%s", code, stderr)
	}
}
