//go:build linux

package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/certkeeper/certkeeper/internal/proc"
)

// Check reports whether the iptables tools the rules need exist, with an
// error that says how to install them.
func (r *Redirect) Check() error {
	for _, tool := range r.tools() {
		if _, err := iptablesPath(tool); err != nil {
			return err
		}
	}
	return nil
}

// withTag returns spec with the comment tag appended unless spec has it.
func withTag(spec []string) []string {
	for _, s := range spec {
		if s == Tag {
			return spec
		}
	}
	return append(spec[:len(spec):len(spec)], "-m", "comment", "--comment", Tag)
}

func (r *Redirect) tools() []string {
	if r.IPv6 {
		return []string{"iptables", "ip6tables"}
	}
	return []string{"iptables"}
}

// rules returns the chains and specs to add.
func (r *Redirect) rules() [][]string {
	spec := withTag(r.Spec)
	rs := [][]string{append([]string{"PREROUTING"}, spec...)}
	if r.Output {
		out := append([]string{"OUTPUT"}, spec...)
		rs = append(rs, append(out, "-m", "owner", "!", "--uid-owner", strconv.Itoa(r.ExceptUID)))
	}
	return rs
}

// Install removes the tagged rules left by an earlier proxy, then adds the
// rules, each only if it is not there already (-C), so a second Install adds
// nothing. When adding fails, it removes what it added: on error no tagged
// rule is left.
func (r *Redirect) Install(ctx context.Context) error {
	if err := r.Remove(ctx); err != nil {
		return fmt.Errorf("removing leftover rules: %w", err)
	}
	for _, tool := range r.tools() {
		for _, rule := range r.rules() {
			if _, err := run(ctx, tool, append([]string{"-C"}, rule...)...); err == nil {
				continue
			}
			if _, err := run(ctx, tool, append([]string{"-A"}, rule...)...); err != nil {
				return errors.Join(err, r.Remove(ctx)) // all or nothing
			}
		}
	}
	return nil
}

// Remove deletes every rule tagged with the comment from the nat PREROUTING
// and OUTPUT chains of iptables and ip6tables, whoever added it. It goes on
// after an error and returns them all.
func (r *Redirect) Remove(ctx context.Context) error {
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		// Without IPv6 rules, ip6tables is only asked for leftovers (a
		// proxy run with IPv6 and killed) and may be missing or fail.
		optional := tool == "ip6tables" && !r.IPv6
		if _, err := iptablesPath(tool); err != nil && optional {
			continue
		}
		for _, chain := range []string{"PREROUTING", "OUTPUT"} {
			out, err := run(ctx, tool, "-S", chain)
			if err != nil {
				if !optional {
					errs = append(errs, err)
				}
				continue
			}
			for _, line := range taggedRules(out) {
				args := splitRule(line)
				args[0] = "-D"
				if _, err := run(ctx, tool, args...); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Tagged returns the rules tagged with Tag in the nat PREROUTING and
// OUTPUT chains of iptables and ip6tables, as "iptables -S" prints them,
// whoever added them: while no proxy runs, those of one that was killed
// (SIGKILL, a crash), which send port 443 to a port nothing listens on. A
// tool that is not installed is skipped; an error of one that is (not
// root) is returned.
func Tagged(ctx context.Context) ([]string, error) {
	var rules []string
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := iptablesPath(tool); err != nil {
			continue
		}
		for _, chain := range []string{"PREROUTING", "OUTPUT"} {
			out, err := run(ctx, tool, "-S", chain)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, r := range taggedRules(out) {
				rules = append(rules, tool+" -t nat "+r)
			}
		}
	}
	return rules, errors.Join(errs...)
}

// taggedRules returns the "-A CHAIN ..." lines of iptables -S output that
// carry the tag.
func taggedRules(out []byte) []string {
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "-A ") {
			continue
		}
		f := splitRule(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "--comment" && f[i+1] == Tag {
				lines = append(lines, line)
				break
			}
		}
	}
	return lines
}

// splitRule splits a line of iptables -S output into arguments. iptables
// quotes an argument holding spaces (a comment) with double quotes and
// escapes quotes and backslashes in it.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inArg, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			quoted, inArg = !quoted, true
		case c == ' ' && !quoted:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// run runs tool on the nat table with args and returns its output. The
// error names the command and holds what it printed.
func run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path, err := iptablesPath(tool)
	if err != nil {
		return nil, err
	}
	// -w: wait for the xtables lock rather than fail while another program
	// (a firewall daemon, Docker) changes rules.
	cmd := proc.Command(ctx, path, append([]string{"-w", "5", "-t", "nat"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	return stdout.Bytes(), nil
}

// iptablesPath finds tool in PATH or in the sbin directories, which are
// not on every user's PATH.
func iptablesPath(tool string) (string, error) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, tool)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin (Debian: apt-get install iptables)", tool)
}
