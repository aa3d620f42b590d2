package renew

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/internal/atomicfile"
)

// Deployed is the Action of a pair that was not due but whose deploy hook
// an earlier run did not see through (it crashed, was killed, or the hook
// failed): the hook ran again for the files in place.
const Deployed Action = "deployed"

// deployPendingPath is the marker of a pair whose new files are (or are
// about to be) in place and whose deploy hook has not succeeded yet:
// DIR/renewal/BASE.deploy-pending. It is written, synced, before the
// files are replaced and removed once the hook succeeds, so that a run
// killed in between (a reboot, the cgroup killed, a hook that hangs until
// a timeout) leaves it for the next run, which runs the hook again rather
// than leaving the server on the old certificate, which it holds in
// memory, until it expires.
func deployPendingPath(dir certfile.Dir, base string) string {
	return filepath.Join(string(dir), "renewal", base+".deploy-pending")
}

// markDeployPending writes j's marker when it has a deploy hook to run.
func (r *Renewer) markDeployPending(j *Result) error {
	if r.AfterRenew == nil || j.Settings.DeployHook == "" {
		return nil
	}
	return markPending(deployPendingPath(r.Dir, j.Base))
}

// deployDone removes j's marker after its deploy hook succeeded.
func (r *Renewer) deployDone(j *Result) error {
	return clearPending(deployPendingPath(r.Dir, j.Base))
}

// MarkDeployPending marks the certificate named for name in dir as one
// whose deploy hook has yet to succeed for the files about to be written:
// cert issue's, before it orders. Until ClearDeployPending, the Renewer
// runs the pair's deploy hook (its settings') again at each run that
// leaves it alone (Deployed): a hook that failed, or a run killed before
// its hook finished, left the server on the old certificate, which
// neither cert renew nor cert issue run again would otherwise deploy.
func MarkDeployPending(dir certfile.Dir, name string) error {
	path, err := pendingPathFor(dir, name)
	if err != nil {
		return err
	}
	return markPending(path)
}

// ClearDeployPending removes MarkDeployPending's mark: the deploy hook has
// succeeded, or no files were written.
func ClearDeployPending(dir certfile.Dir, name string) error {
	path, err := pendingPathFor(dir, name)
	if err != nil {
		return err
	}
	return clearPending(path)
}

// DeployIsPending reports whether the certificate named for name in dir is
// marked as one whose deploy hook has yet to succeed.
func DeployIsPending(dir certfile.Dir, name string) bool {
	path, err := pendingPathFor(dir, name)
	if err != nil {
		return false
	}
	_, err = os.Lstat(path)
	return err == nil
}

// pendingPathFor is the marker of the pair named for name in dir.
func pendingPathFor(dir certfile.Dir, name string) (string, error) {
	p, err := dir.Paths(name)
	if err != nil {
		return "", err
	}
	return deployPendingPath(dir, p.Base()), nil
}

// markPending writes the marker at path, synced.
func markPending(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("marking the deploy hook pending: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return fmt.Errorf("marking the deploy hook pending: %w", err)
	}
	return nil
}

// clearPending removes the marker at path, if there.
func clearPending(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the deploy hook's pending mark: %w", err)
	}
	return nil
}

// deployPending runs AfterRenew again for each pair left alone by this run
// whose marker an earlier run left behind, and says so of those with no
// deploy hook to run (one given once, which failed, is not remembered).
func (r *Renewer) deployPending(ctx context.Context, results []*Result) {
	if r.AfterRenew == nil || r.DryRun {
		return
	}
	for _, j := range results {
		if j.pair == nil || j.Action != NotDue {
			continue
		}
		if _, err := os.Stat(deployPendingPath(r.Dir, j.Base)); err != nil {
			continue
		}
		if j.Settings.DeployHook == "" { // a hook given once, which failed, and is not remembered
			j.Detail += "; its deploy is pending (an earlier run's deploy hook failed): give --deploy-hook to run it"
			continue
		}
		j.Paths, j.NotAfter = j.pair.Paths, j.pair.Chain[0].NotAfter
		err := r.AfterRenew(ctx, j)
		if err == nil {
			err = r.deployDone(j)
		}
		if err != nil {
			j.Action, j.Detail, j.Err = Failed, "the deploy hook an earlier run did not finish, run again: "+err.Error(), err
			continue
		}
		j.Action, j.Detail = Deployed, "deploy hook run again (an earlier run did not finish it); "+j.Detail
	}
}
