// Package certdeploy hands certkeeper's certificates to other TLS servers
// (haproxy, nginx, anything that reads PEM files) in the layout each reads,
// and reloads them safely.
//
// The oldest pain of this job is the glue: one bad file stops a reload and
// takes every site down. A Deployer therefore writes every file atomically
// (temporary file, fsync, rename), then runs the server's own check
// (haproxy -c, nginx -t) on the result, and reloads only if it passes. If
// the check fails, the previous files are put back, so the server's next
// reload (or restart) still finds a configuration that works, and the error
// names the certificate the check complained about.
//
// It does not obtain or renew certificates (the root package does) and
// does not know how to reload a particular server: Check and Reload are
// commands the operator gives.
package certdeploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/internal/hook"
	"github.com/certkeeper/certkeeper/storage"
)

// The formats a Deployer writes.
const (
	// HAProxy writes DIR/NAME.pem (chain then key, as haproxy's crt wants)
	// and DIR/crt-list naming them all; bind with "ssl crt-list DIR/crt-list".
	HAProxy = "haproxy"
	// PEM writes DIR/NAME/{cert,chain,fullchain,privkey}.pem, like
	// certbot's live/ directory.
	PEM = "pem"
	// Nginx writes DIR/NAME/{fullchain,privkey}.pem and DIR/certkeeper.conf,
	// two maps from $ssl_server_name to them: "ssl_certificate
	// $certkeeper_cert; ssl_certificate_key $certkeeper_key;".
	// nginx's workers read those files at each handshake, so unless
	// they run as the deploying user they need Deployer.Group.
	Nginx = "nginx"
)

// Formats returns the formats, for usage messages.
func Formats() []string { return []string{HAProxy, PEM, Nginx} }

// manifest lists the files the last deployment wrote, so certificates
// that are gone from storage are removed too.
const manifest = ".certkeeper-deploy"

// Deployer writes certificates into Dir in Format. Set the fields before
// first use; they must not change afterwards. Deploy calls are serialised.
type Deployer struct {
	// Format is HAProxy, PEM or Nginx. Required.
	Format string
	// Dir is the directory to write into; it is created (0700) if missing.
	// Required.
	Dir string
	// Group, if set, is the group (a name or a number) that may read the
	// files: they are written 0640 and their directories 0750 in that
	// group (Dir itself gets the group and g+rx), where they are otherwise
	// this user's alone (0600, 0700). The Nginx layout needs it whenever
	// nginx's workers run as another user (www-data on Debian, nginx on
	// Red Hat), since they read the files at each handshake; haproxy and a
	// server that loads its files as root at start do not. POSIX only; a
	// user other than root must be a member of the group.
	Group string
	// Check is a shell command that validates the new files (haproxy -c -f
	// CFG, nginx -t); a failure restores the previous files. Empty checks
	// only that each key matches its certificate.
	Check string
	// Reload is a shell command run after a passing check, when anything
	// changed (systemctl reload haproxy), and by the next Deploy, changed or
	// not, while the last reload failed. Empty runs nothing.
	Reload string
	// Logger receives what was deployed. Nil means slog.Default().
	Logger *slog.Logger
	// Output, if set, receives what Check and Reload print when they
	// succeed (a command shows it to its operator, as certbot shows a
	// hook's output); nil logs it at Info.
	Output io.Writer

	mu        sync.Mutex // serialises Deploy: one set of files at a time
	reloadDue bool       // the last Reload failed: the server may not have the files yet
	failures  atomic.Uint64
	failing   atomic.Bool

	// retryFirst and retryMax bound Follow's waits between retries of a
	// failed deployment; zero means retryFirst and retryMax (tests shorten
	// them).
	retryFirst, retryMax time.Duration
}

// CheckError is returned when Check rejected the new files: they were
// replaced by the previous ones (or, at a first deployment, removed with
// the directories made for them), and Names are the certificates the check
// output mentions (all changed ones if it mentions none).
type CheckError struct {
	// Names are the primary names of the certificates blamed.
	Names []string
	// Output is what the check command printed.
	Output string
	// Err is the command's error.
	Err error
	// Restored reports whether previous files were put back; false when
	// there were none (a first deployment), so nothing is deployed.
	Restored bool
}

func (e *CheckError) Error() string {
	undone := "nothing deployed"
	if e.Restored {
		undone = "previous files restored"
	}
	msg := fmt.Sprintf("the check rejected the new files for %s (%s): %v", strings.Join(e.Names, ", "), undone, e.Err)
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += ": " + out
	}
	return msg
}

func (e *CheckError) Unwrap() error { return e.Err }

func (d *Deployer) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

// Stats are what a Deployer's deployments came to since it was made, for
// metrics.
type Stats struct {
	// Failures counts the calls of Deploy (and so of Follow's deployments
	// and their retries) that returned an error.
	Failures uint64
	// Failing reports whether the last one did: the files deployed are not
	// the newest, or the server has not reloaded them.
	Failing bool
}

// Stats returns d's counts. It does not wait for a deployment under way.
func (d *Deployer) Stats() Stats {
	return Stats{Failures: d.failures.Load(), Failing: d.failing.Load()}
}

// file is one file of a deployment and the certificate it belongs to.
type file struct {
	rel  string
	data []byte
	name string // primary name of its certificate; "" for an index file
}

// Deploy writes certs (one per name: callers pass the newest of each) in
// d's layout, checks and reloads. It reports whether anything changed; an
// unchanged deployment runs neither Check nor Reload.
func (d *Deployer) Deploy(ctx context.Context, certs []*storage.Certificate) (changed bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() {
		if err != nil {
			d.failures.Add(1)
		}
		d.failing.Store(err != nil)
	}()
	if d.Dir == "" {
		return false, errors.New("certdeploy: no directory to deploy into")
	}
	dir, err := filepath.Abs(d.Dir)
	if err != nil {
		return false, err
	}
	files, err := layout(d.Format, dir, certs)
	if err != nil {
		return false, err
	}
	if d.Check == "" {
		for _, c := range certs {
			if _, err := tls.X509KeyPair(c.ChainPEM, c.KeyPEM); err != nil {
				return false, fmt.Errorf("deploying %s: %w", c.Names[0], err)
			}
		}
	}
	perm, err := permsFor(d.Group)
	if err != nil {
		return false, err
	}
	if err := perm.topDir(dir); err != nil {
		return false, fmt.Errorf("deploying into %s: %w", dir, err)
	}
	var list []string
	for _, f := range files {
		list = append(list, f.rel)
	}
	sort.Strings(list)
	files = append(files, file{rel: manifest, data: []byte(strings.Join(list, "\n") + "\n")})

	// Old files no longer deployed are removed too (and restored on failure).
	var stale []string
	if old, err := readOld(filepath.Join(dir, manifest)); err == nil {
		keep := map[string]bool{}
		for _, r := range list {
			keep[r] = true
		}
		for _, r := range strings.Fields(string(old)) {
			if !keep[r] && filepath.IsLocal(r) {
				stale = append(stale, r)
			}
		}
	}

	tx := &transaction{dir: dir, perm: perm}
	changedNames := map[string]bool{}
	for _, f := range files {
		w, err := tx.write(f.rel, f.data)
		if err != nil {
			tx.rollback()
			return false, fmt.Errorf("deploying %s: %w", f.rel, err)
		}
		if w && f.name != "" {
			changedNames[f.name] = true
		}
	}
	for _, r := range stale {
		if err := tx.remove(r); err != nil {
			tx.rollback()
			return false, fmt.Errorf("removing %s: %w", r, err)
		}
	}
	if !tx.changed() {
		if d.reloadDue || reloadMarked(dir) {
			d.logger().Info("running the post hook again: the last one failed, and the files it was for are unchanged", slog.String("dir", dir))
			return false, d.reload(ctx, dir) // the files are the ones the failed reload was for
		}
		return false, nil
	}
	if d.Check != "" {
		out, err := run(ctx, d.Check, dir)
		if err != nil {
			restored := tx.rollback()
			return false, &CheckError{Names: blame(out, dir, files, changedNames), Output: out, Err: err, Restored: restored}
		}
		d.printed("the check hook", out)
	}
	tx.commit()
	d.logger().Info("certificates deployed", slog.String("format", d.Format), slog.String("dir", dir),
		slog.Any("names", sortedKeys(changedNames)))
	return true, d.reload(ctx, dir)
}

// reloadDueFile, in the deployment's directory, marks a reload that
// failed: the next Deploy runs it again even if nothing changed by then,
// in this process (reloadDue) or the next (a deploy from cron, whose next
// run found the files in place and said "unchanged" while the server they
// were for had never loaded them: a container trial).
const reloadDueFile = ".certkeeper-reload-due"

// reloadMarked reports whether dir holds reloadDueFile.
func reloadMarked(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, reloadDueFile))
	return err == nil
}

// reload runs Reload, if any, and remembers whether it failed, so that
// the next Deploy runs it again even if nothing changed by then.
func (d *Deployer) reload(ctx context.Context, dir string) error {
	if d.Reload == "" {
		return nil
	}
	out, err := run(ctx, d.Reload, dir)
	d.reloadDue = err != nil
	marker := filepath.Join(dir, reloadDueFile)
	if err == nil {
		if rerr := os.Remove(marker); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			d.logger().Warn("the reload succeeded, but its retry mark could not be removed: the next deployment reloads again",
				slog.String("file", marker), slog.Any("err", rerr))
		}
		d.printed("the post hook", out)
		return nil
	}
	if werr := os.WriteFile(marker, []byte("the reload command failed; the next deployment runs it again\n"), 0o600); werr != nil {
		err = fmt.Errorf("%w (and its retry mark could not be written, %v: a later run that finds the files unchanged will not reload)", err, werr)
	}
	err = fmt.Errorf("the new files passed the check, but the reload command failed: %w", err)
	if out = strings.TrimSpace(out); out != "" {
		err = fmt.Errorf("%w: %s", err, out)
	}
	return err
}

// printed passes on what a hook that succeeded printed, if anything: to
// Output, introduced and indented as cert issue and renew show their
// hooks', else to the log.
func (d *Deployer) printed(what, out string) {
	text := strings.TrimRight(out, "\r\n")
	switch {
	case text == "":
	case d.Output != nil:
		fmt.Fprintf(d.Output, "certkeeper: %s printed:\n    %s\n", what, strings.ReplaceAll(text, "\n", "\n    "))
	default:
		d.logger().Info(what+" printed", slog.String("output", text))
	}
}

// blame returns the certificates whose files the check output names, or
// every changed one if it names none.
func blame(out, dir string, files []file, changed map[string]bool) []string {
	seen := map[string]bool{}
	for _, f := range files {
		if f.name != "" && !seen[f.name] && strings.Contains(out, filepath.Join(dir, f.rel)) {
			seen[f.name] = true
		}
	}
	if len(seen) == 0 {
		return sortedKeys(changed)
	}
	return sortedKeys(seen)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// run runs a shell command in dir with CERTKEEPER_DEPLOY_DIR set, and
// returns its combined output.
func run(ctx context.Context, command, dir string) (string, error) {
	c := hook.Command(ctx, command)
	c.Env = append(c.Env, "CERTKEEPER_DEPLOY_DIR="+dir)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// It succeeded, and left a process running in the background with
		// its output ("systemctl reload x; sleep 5 &"), as hook.RunTo
		// allows: waiting for that output would wait for that process. (A
		// trial's proxy took such a reload for a failure and ran it again
		// at every retry.)
		err = nil
		out.WriteString("\n(it left a process running in the background with its output; redirect it, cmd >FILE 2>&1 &, to see all it prints)")
	}
	if err != nil {
		return out.String(), fmt.Errorf("%q: %w", command, err)
	}
	return out.String(), nil
}
