//go:build unix

package testsvc

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// envAsNobody names, in the environment of a test binary run by AsNobody,
// the test it runs as nobody.
const envAsNobody = "CERTKEEPER_TEST_AS_NOBODY"

// nobodyID is the user and group nobody (nogroup on Debian).
const nobodyID = 65534

// AsNobody runs the calling test again as the user nobody when this
// process is root, whom directory permissions do not stop, and reports
// whether it did: the caller then returns at once, the child's result
// being the test's (its output is logged; its failure fails the test).
// As another user, and in the child, it returns false: the test runs
// here, and a directory of mode 000 keeps it out.
//
// The child is a copy of the test binary in a directory nobody may
// enter, run with -test.run naming the test, with TMPDIR a directory of
// nobody's; what the test makes there (t.TempDir) is nobody's.
func AsNobody(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envAsNobody) == t.Name() || os.Geteuid() != 0 {
		return false
	}
	dir, err := os.MkdirTemp("", "ck-as-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tmp, bin := filepath.Join(dir, "tmp"), filepath.Join(dir, filepath.Base(os.Args[0]))
	err = os.Chmod(dir, 0o755)
	if err == nil {
		err = os.Mkdir(tmp, 0o700)
	}
	if err == nil {
		err = os.Chown(tmp, nobodyID, nobodyID)
	}
	if err == nil {
		var data []byte
		if data, err = os.ReadFile(os.Args[0]); err == nil {
			err = os.WriteFile(bin, data, 0o755)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), envAsNobody+"="+t.Name(), "TMPDIR="+tmp, "HOME="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: nobodyID}}
	out, err := cmd.CombinedOutput()
	if _, failed := err.(*exec.ExitError); failed {
		t.Fatalf("%s as the user nobody: %v\n%s", t.Name(), err, out)
	} else if err != nil {
		Unavailable(t, "running a test binary as the user nobody", "a temporary directory nobody may enter and run a program from", err)
	}
	switch {
	case bytes.Contains(out, []byte("--- SKIP: "+t.Name()+" ")):
		t.Skipf("%s as the user nobody was skipped:\n%s", t.Name(), out)
	case !bytes.Contains(out, []byte("--- PASS: "+t.Name()+" ")):
		t.Fatalf("%s as the user nobody did not pass:\n%s", t.Name(), out)
	}
	t.Logf("%s ran as the user nobody:\n%s", t.Name(), out)
	return true
}
