package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

const shellHint = "install Debian's bash, zsh, fish and bsdutils (script)"

// TestCompletionShells: the completion scripts work in the shells
// themselves. bash and zsh run interactively on a terminal (util-linux's
// script gives them one) with the script loaded as docs/cli.md says; a TAB
// typed after "cert iss" must make "cert issue", so that the "--help"
// typed next prints its usage, and one after "--key-type=ecdsa-p3" must
// make ecdsa-p384, which --check-config then accepts. fish answers
// "complete -C" with what a TAB would offer.
func TestCompletionShells(t *testing.T) {
	script := testsvc.LookPath(t, "script", shellHint)
	storage := t.TempDir()
	typed := "certkeeper cert iss\t--help | head -1\n" +
		"certkeeper proxy --key-type=ecdsa-p3\t--check-config --ca local --allow localhost --storage " + storage + "\n" +
		"exit\n"
	for _, sh := range []struct{ name, cmd, load string }{
		{"bash", "bash --norc --noprofile -i", "source <(certkeeper completion bash)\n"},
		{"zsh", "zsh -f -i", "autoload -Uz compinit && compinit -u && source <(certkeeper completion zsh)\n"},
	} {
		t.Run(sh.name, func(t *testing.T) {
			testsvc.LookPath(t, sh.name, shellHint)
			out := terminal(t, script, sh.cmd, sh.load+typed, "Usage: certkeeper cert issue -d NAME", "configuration OK")
			if strings.Contains(out, "unknown") {
				t.Errorf("a completed command line was refused:\n%s", out)
			}
		})
	}
	t.Run("fish", func(t *testing.T) {
		fish := testsvc.LookPath(t, "fish", shellHint)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, fish, "--no-config", "-c", `certkeeper completion fish | source
complete -C "certkeeper cert iss"; complete -C "certkeeper proxy --key-type=ecdsa-p3"; complete -C "certkeeper cert issue --challenge "`)
		cmd.Env, cmd.Dir = shellEnv(t), t.TempDir() // no file names to offer
		out, err := cmd.CombinedOutput()
		got := strings.Fields(string(out))
		want := []string{"issue", "--key-type=ecdsa-p384", "dns-01", "dns-persist-01", "http-01", "tls-alpn-01"}
		if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("fish completed %q (%v), want %q", got, err, want)
		}
	})
}

// terminal runs the shell command sh on a terminal (script), types input
// and waits until its output holds each of wants; it returns the output.
func terminal(t *testing.T, script, sh, input string, wants ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qc", sh, "/dev/null")
	cmd.Env, cmd.Dir = shellEnv(t), t.TempDir()
	var out testsvc.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(in, input) // read in order: a TAB completes before the next byte is read
	found := within(20*time.Second, func() bool {
		for _, w := range wants {
			if !strings.Contains(out.String(), w) {
				return false
			}
		}
		return true
	})
	in.Close()
	_ = cmd.Wait()
	if !found {
		t.Errorf("%s: the output lacks one of %q:\n%s", sh, wants, out.String())
	}
	return out.String()
}

// shellEnv is the environment of a shell under test: the certkeeper built
// for the tests first in PATH, a home of its own, a plain terminal.
func shellEnv(t *testing.T) []string {
	return append(os.Environ(), "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+t.TempDir(), "TERM=dumb", "XDG_CONFIG_HOME="+t.TempDir())
}
