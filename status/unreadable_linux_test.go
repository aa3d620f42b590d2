package status_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// envUnreadableDir names the storage a child of TestUnreadableRecordListed
// reads, as the user nobody.
const envUnreadableDir = "CERTKEEPER_STATUS_UNREADABLE_DIR"

func init() {
	if dir := os.Getenv(envUnreadableDir); dir != "" {
		os.Exit(printStates(dir))
	}
}

// printStates prints each entry of Read on dir as "KEY STATE ERROR".
func printStates(dir string) int {
	certs, err := status.Read(context.Background(), filestore.New(dir), time.Now())
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	for _, c := range certs {
		fmt.Println(c.Key, c.State, c.LastError)
	}
	return 0
}

// TestUnreadableRecordListed: a record this user may not read (left by a
// run as root, say) is listed as damaged with the error, not left out as
// if it had been deleted, which made "certkeeper status" report every
// certificate fine while one could not be served (trial 28). As root the
// reading runs in a child as nobody, since root reads anything.
func TestUnreadableRecordListed(t *testing.T) {
	dir := t.TempDir()
	st := filestore.New(dir)
	key := "certificates/local/hidden.test.json"
	if err := st.Store(t.Context(), key, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.Chmod(file, 0); err != nil {
		t.Fatal(err)
	}
	var out string
	if os.Geteuid() != 0 {
		certs, err := status.Read(t.Context(), st, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range certs {
			out += fmt.Sprintln(c.Key, c.State, c.LastError)
		}
	} else {
		const nobody = 65534
		for d := dir; d != filepath.Dir(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
			os.Chmod(d, 0o755) // traversable; the test's own directories only, until /tmp
		}
		_ = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err == nil && p != file {
				err = os.Chown(p, nobody, nobody)
			}
			return err
		})
		// The test binary's own directory is root's alone: a copy nobody may run.
		bin := filepath.Join(filepath.Dir(dir), "status.test")
		data, err := os.ReadFile(os.Args[0])
		if err == nil {
			err = os.WriteFile(bin, data, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), envUnreadableDir+"="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		b, err := cmd.CombinedOutput()
		if err != nil {
			testsvc.Unavailable(t, "running a test binary as the user nobody from "+filepath.Dir(dir),
				fmt.Sprintf("a temporary directory nobody may traverse and execute from; output: %s", b), err)
		}
		out = string(b)
	}
	if !strings.Contains(out, key+" damaged") || !strings.Contains(out, "permission denied") {
		t.Errorf("status of storage with an unreadable record:\n%s\nwant %s listed as damaged, permission denied", out, key)
	}
}
