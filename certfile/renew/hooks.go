package renew

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/internal/hook"
)

// Hooks runs the hooks remembered in each certificate's Settings, as
// `certkeeper cert renew` does: set a Renewer's BeforeRenew and AfterRenew
// to its methods, and call Post with the run's results. Each hook is a
// shell command (sh -c; cmd /C on Windows) run with this process's
// privileges. The zero value is ready to use, for one run; it must not be
// used by two runs at once.
type Hooks struct {
	// Output, if set, receives what each hook that succeeded printed
	// (a failed hook's output is in its error).
	Output io.Writer

	// pre holds the result of each pre-hook already run: each runs once
	// per run, before the first certificate that has it.
	pre map[string]error
	// owed are the post-hooks of the certificates whose renewal began
	// (BeforeRenew), for PostOwed.
	owed []string
}

// BeforeRenew runs the certificate's PreHook, unless this run has run it
// already (then its earlier result is returned). A failing pre-hook fails
// every certificate that has it, which is then not renewed.
func (h *Hooks) BeforeRenew(ctx context.Context, j *Result) error {
	if post := j.Settings.PostHook; post != "" && !slices.Contains(h.owed, post) {
		h.owed = append(h.owed, post)
	}
	cmd := j.Settings.PreHook
	if cmd == "" {
		return nil
	}
	if err, done := h.pre[cmd]; done {
		return err
	}
	err := hook.RunTo(ctx, h.Output, "the pre-hook", cmd)
	if err != nil {
		err = fmt.Errorf("pre-hook failed, not renewed: %w", err)
	}
	if h.pre == nil {
		h.pre = map[string]error{}
	}
	h.pre[cmd] = err
	return err
}

// AfterRenew runs the certificate's DeployHook with CERTKEEPER_NAME,
// CERTKEEPER_NAMES (space-separated), CERTKEEPER_CERT_FILE,
// CERTKEEPER_KEY_FILE (absolute paths, as a hook that changes directory
// needs them) and CERTKEEPER_NOT_AFTER (RFC 3339, UTC) in its
// environment, and the variables of other clients' hooks that mean the
// same, so that a hook written for them runs unchanged: certbot's
// RENEWED_DOMAINS, lego's LEGO_CERT_DOMAIN, LEGO_CERT_PATH (its bundle,
// leaf and chain, as certkeeper's file) and LEGO_CERT_KEY_PATH. Certbot's
// RENEWED_LINEAGE is not set: it names a folder of cert.pem,
// fullchain.pem and privkey.pem, which certkeeper does not write.
func (h *Hooks) AfterRenew(ctx context.Context, j *Result) error {
	if j.Settings.DeployHook == "" {
		return nil
	}
	err := hook.RunTo(ctx, h.Output, "the deploy hook for "+j.Names[0], j.Settings.DeployHook,
		"CERTKEEPER_NAME="+j.Names[0],
		"CERTKEEPER_NAMES="+strings.Join(j.Names, " "),
		"CERTKEEPER_CERT_FILE="+absolute(j.Paths.Cert),
		"CERTKEEPER_KEY_FILE="+absolute(j.Paths.Key),
		"CERTKEEPER_NOT_AFTER="+j.NotAfter.UTC().Format(time.RFC3339),
		"RENEWED_DOMAINS="+strings.Join(j.Names, " "),
		"LEGO_CERT_DOMAIN="+j.Names[0],
		"LEGO_CERT_PATH="+absolute(j.Paths.Cert),
		"LEGO_CERT_KEY_PATH="+absolute(j.Paths.Key),
	)
	if err != nil {
		return fmt.Errorf("deploy hook: %w", err)
	}
	return nil
}

// Post runs, once each and in the order of results, the PostHook of the
// certificates a renewal was attempted for: renewed or issued (those with
// a NotAfter, even if their deploy hook failed), or due and failed (their
// pre-hook may have stopped what the post-hook starts again: certbot runs
// it after any attempt too). It stops at the first that fails.
func (h *Hooks) Post(ctx context.Context, results []*Result) error {
	var cmds []string
	for _, j := range results {
		attempted := !j.NotAfter.IsZero() || j.Action == Failed && j.due
		if cmd := j.Settings.PostHook; cmd != "" && attempted && !slices.Contains(cmds, cmd) {
			cmds = append(cmds, cmd)
		}
	}
	for _, cmd := range cmds {
		if err := hook.RunTo(ctx, h.Output, "the post-hook", cmd); err != nil {
			return err
		}
	}
	return nil
}

// Issued runs, for one certificate just issued and written (cert issue),
// its DeployHook and then its PostHook: the post-hook even if the deploy
// hook failed, as after a run of cert renew. The errors are joined.
func (h *Hooks) Issued(ctx context.Context, j *Result) error {
	err := h.AfterRenew(ctx, j)
	if perr := h.Post(ctx, []*Result{j}); perr != nil {
		err = errors.Join(err, fmt.Errorf("post-hook: %w", perr))
	}
	return err
}

// IssuedFiles is Issued for the pair named for j.Names[0] that cert issue
// (IssueFiles) wrote in dir. With a deploy hook, the pair is marked
// (MarkDeployPending) before the hooks run and the mark is cleared once
// they succeed: a hook that fails, or a run killed meanwhile, leaves the
// deploy hook to the next cert renew or cert issue, and the error says so.
// An empty dir is Issued alone.
func (h *Hooks) IssuedFiles(ctx context.Context, dir certfile.Dir, j *Result) error {
	if dir == "" || j.Settings.DeployHook == "" || len(j.Names) == 0 {
		return h.Issued(ctx, j)
	}
	if err := MarkDeployPending(dir, j.Names[0]); err != nil {
		return err
	}
	if err := h.Issued(ctx, j); err != nil {
		return fmt.Errorf("%w (the next cert renew, or cert issue run again, runs the deploy hook again)", err)
	}
	return ClearDeployPending(dir, j.Names[0])
}

// ParseGrace parses a grace period for Renewer.Grace: a time.Duration
// ("36h") or a number of days with the suffix "d" ("7d", "0.5d"). Empty
// is zero (no grace period); negative values are refused.
func ParseGrace(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 7d or 36h", s)
	}
	return d, nil
}

// absolute is path made absolute, or path itself if that fails.
func absolute(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// PostOwed runs, once each, the PostHook of the certificates whose
// renewal began (BeforeRenew), for a run that ended before it had results
// to give Post (interrupted: SIGTERM, Ctrl-C, a timeout): their pre-hook
// may have started what the post-hook stops (an alpn-proxy and its
// iptables redirect, which an alpn-proxy trial found left running for
// good). Give it a context of its own: the run's has ended. It runs them
// all, and returns their errors.
func (h *Hooks) PostOwed(ctx context.Context) error {
	var errs []error
	for _, cmd := range h.owed {
		if err := hook.RunTo(ctx, h.Output, "the post-hook", cmd); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
