package testca

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// PebbleDirEnv names the environment variable that points at a directory
// holding prebuilt pebble and pebble-challtestsrv binaries. When it is set,
// testca uses them and builds nothing (CI prebuilds them once).
const PebbleDirEnv = "CERTKEEPER_PEBBLE_DIR"

// The packages built from tools/go.mod, which pins their versions.
const (
	pebblePkg       = "github.com/letsencrypt/pebble/v2/cmd/pebble"
	challtestsrvPkg = "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv"
)

// buildTimeout bounds one build, download of the modules included; lockWait
// bounds waiting for another test process's build.
const (
	buildTimeout = 5 * time.Minute
	lockWait     = buildTimeout + time.Minute
)

const buildHint = "building Pebble needs the Go toolchain and the Go module proxy; " +
	"or build it once with `cd tools && go build -modfile MODFILE -o DIR " + pebblePkg + " " + challtestsrvPkg +
	"` (MODFILE as patchedModFile in internal/testca/build.go makes it) and set " + PebbleDirEnv + "=DIR"

// pebblePatch is Pebble's db/memorystore.go with a lock-order deadlock
// fixed (see its FindValidAuthorization) and ARI replacements of
// certificates whose serial's DER encoding starts with 0x00 found (see
// its GetOrderByIssuedSerial), relative to tools/: the build puts it in
// place of the original (patchedModFile). Without it a test with many
// concurrent orders (TestClusterFiftyNames) can find Pebble answering
// nothing at all, and one renewal in 256 is refused its replaces
// (TestARISerialHighBit; TestClusterRenewal counted it as a double
// renewal).
const pebblePatch = "pebblefix/memorystore.go.txt"

// binaries are the paths of the two executables.
type binaries struct {
	pebble, challtestsrv string
}

// built memoises the build for the test process: tests in one binary build
// (or find) Pebble once, and a failed build is not retried by every test.
var built = sync.OnceValues(findOrBuild)

// pebbleBinaries returns the Pebble executables, building them if needed.
// If they cannot be had it calls testsvc.Unavailable and does not return.
func pebbleBinaries(t testing.TB) binaries {
	t.Helper()
	b, err := built()
	if err != nil {
		testsvc.Unavailable(t, "pebble", buildHint, err)
	}
	return b
}

func findOrBuild() (binaries, error) {
	if dir := os.Getenv(PebbleDirEnv); dir != "" {
		b := binariesIn(dir)
		if err := b.check(); err != nil {
			return binaries{}, fmt.Errorf("%s=%s: %w", PebbleDirEnv, dir, err)
		}
		return b, nil
	}
	tools, err := toolsDir()
	if err != nil {
		return binaries{}, err
	}
	cache, err := cacheDir(tools)
	if err != nil {
		return binaries{}, err
	}
	b := binariesIn(cache)
	if b.check() == nil {
		return b, nil
	}
	if err := buildInto(tools, cache); err != nil {
		return binaries{}, err
	}
	return b, b.check()
}

// BuildPebble builds pebble and pebble-challtestsrv, patched as testca
// builds them (pebblePatch), into dir, for a script that prebuilds them
// once and sets PebbleDirEnv=dir for every test process:
//
//	go run ./internal/testca/buildpebble DIR
//
// It must run inside the certkeeper module (it finds tools/ from the
// working directory). Binaries already in dir are kept.
func BuildPebble(dir string) error {
	tools, err := toolsDir()
	if err != nil {
		return err
	}
	if binariesIn(dir).check() == nil {
		return nil
	}
	return buildInto(tools, dir)
}

func binariesIn(dir string) binaries {
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	return binaries{
		pebble:       filepath.Join(dir, "pebble"+exe),
		challtestsrv: filepath.Join(dir, "pebble-challtestsrv"+exe),
	}
}

func (b binaries) check() error {
	for _, path := range []string{b.pebble, b.challtestsrv} {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() || (runtime.GOOS != "windows" && fi.Mode()&0o111 == 0) {
			return fmt.Errorf("%s is not an executable file", path)
		}
	}
	return nil
}

// toolsDir finds the tools module: walking up from the working directory
// (go test runs a test in its package's directory) to the directory whose
// go.mod has tools/go.mod beside it.
func toolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		tools := filepath.Join(dir, "tools")
		if fileExists(filepath.Join(dir, "go.mod")) && fileExists(filepath.Join(tools, "go.mod")) {
			return tools, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no tools/go.mod beside a go.mod in any parent of the working directory")
		}
		dir = parent
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// cacheDir returns the directory the binaries are cached in:
// $XDG_CACHE_HOME/certkeeper-test/<key> (os.UserCacheDir, or the temporary
// directory if there is none), where key is a hash of tools/go.mod,
// tools/go.sum, the Pebble patch and the target platform, so that a new
// pin or patch builds anew and an old build is never used for it.
func cacheDir(tools string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum", pebblePatch} {
		data, err := os.ReadFile(filepath.Join(tools, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(data))
		h.Write(data)
	}
	fmt.Fprintf(h, "%s/%s\n", runtime.GOOS, runtime.GOARCH)
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "certkeeper-test", hex.EncodeToString(h.Sum(nil))[:16]), nil
}

// buildInto builds both binaries into cache. Test binaries of several
// packages run at once (go test ./...): they take an exclusive lock on a
// file in cache, so that one builds while the others wait, and each binary
// is built under a temporary name and renamed into place, so that nobody
// ever runs a half-written file.
func buildInto(tools, cache string) error {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(cache, ".lock"), lockWait)
	if err != nil {
		return fmt.Errorf("locking the Pebble build cache: %w", err)
	}
	defer unlock()
	if binariesIn(cache).check() == nil {
		return nil // another process built them while we waited
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("finding the go command: %w", err)
	}
	tmp, err := os.MkdirTemp(cache, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	// GOWORK=off: tools/go.mod alone decides the versions. CGO_ENABLED=0:
	// Pebble needs no C, and no C compiler need be installed. GOFLAGS is
	// replaced so that flags meant for the tests (-race, say) stay out.
	env := append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly -buildvcs=false")
	modFile, err := patchedModFile(ctx, goBin, tools, env, tmp)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-modfile", modFile, "-o", tmp+string(filepath.Separator), pebblePkg, challtestsrvPkg)
	cmd.Dir = tools
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", tools, err, out)
	}
	built := binariesIn(tmp)
	final := binariesIn(cache)
	for _, p := range [][2]string{{built.pebble, final.pebble}, {built.challtestsrv, final.challtestsrv}} {
		if err := os.Rename(p[0], p[1]); err != nil {
			return err
		}
	}
	return nil
}

// patchedModFile copies the Pebble module into dir with pebblePatch in
// place of its db/memorystore.go (go build -overlay may not replace files
// in the module cache), and writes dir/go.mod: tools/go.mod with a replace
// directive pointing at the copy, and its go.sum, for go build -modfile.
// It returns that go.mod.
func patchedModFile(ctx context.Context, goBin, tools string, env []string, dir string) (string, error) {
	// go mod download (not go list -m, whose .Dir is empty until the
	// module is in the module cache, as on a fresh machine) fetches the
	// pinned version if needed and says where it is.
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", "github.com/letsencrypt/pebble/v2")
	cmd.Dir, cmd.Env = tools, env
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("downloading the Pebble module in %s: %w", tools, err)
	}
	var dl struct{ Dir, Error string }
	if err := json.Unmarshal(out, &dl); err != nil || dl.Dir == "" {
		return "", fmt.Errorf("downloading the Pebble module in %s: no directory in %q (%v %s)", tools, out, err, dl.Error)
	}
	src, dst := dl.Dir, filepath.Join(dir, "pebble-module")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		return "", fmt.Errorf("copying the Pebble module: %w", err)
	}
	patch, err := os.ReadFile(filepath.Join(tools, filepath.FromSlash(pebblePatch)))
	if err != nil {
		return "", err
	}
	target := filepath.Join(dst, "db", "memorystore.go")
	if err := os.WriteFile(target, patch, 0o644); err != nil {
		return "", err
	}
	mod, err := os.ReadFile(filepath.Join(tools, "go.mod"))
	if err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(tools, "go.sum"))
	if err != nil {
		return "", err
	}
	mod = fmt.Appendf(mod, "\nreplace github.com/letsencrypt/pebble/v2 => %s\n", filepath.ToSlash(dst))
	name := filepath.Join(dir, "go.mod")
	if err := os.WriteFile(name, mod, 0o644); err != nil {
		return "", err
	}
	return name, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644)
}
