package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Unavailable reports that what (a binary, a build, a server) cannot be had,
// because of err. Run by hand, it skips the test with hint, which says what to
// install or set; with CI=true in the environment it fails the test instead:
// a missing component must never turn a CI run green. It must be called from
// the goroutine running the test, and it does not return.
//
// Every test helper that needs an outside component reports its absence
// through this one function, so the rule cannot drift between packages.
func Unavailable(t testing.TB, what, hint string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s unavailable: %v (%s)", what, err, hint)
	}
	t.Skipf("%s unavailable (%v); %s", what, err, hint)
}

// sbinDirs are searched after PATH: Debian installs daemons such as named in
// /usr/sbin, which is on root's PATH but often not on a developer's.
var sbinDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"}

// LookPath returns the path of the executable name, looked up in PATH and
// then in the sbin and bin directories where Debian installs servers. If it
// is nowhere, LookPath calls [Unavailable] with hint and does not return.
func LookPath(t testing.TB, name, hint string) string {
	t.Helper()
	path, err := lookPath(name)
	if err != nil {
		Unavailable(t, name, hint, err)
	}
	return path
}

func lookPath(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, dir := range sbinDirs {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not in PATH or %v: %w", name, sbinDirs, exec.ErrNotFound)
}
