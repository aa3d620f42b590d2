package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/certdeploy"
	"github.com/certkeeper/certkeeper/internal/cmdline"
)

// deployFlags are the flags of "deploy", and of the proxy's deploy mode
// (the same flags prefixed "deploy-", config keys deploy_format, ...).
// --out, --check and --reload were renamed --out-dir, --check-hook and
// --post-hook, the names cert issue and cert renew use; the old names
// are deprecated aliases (alias.go).
type deployFlags struct {
	Format string `yaml:"deploy_format"`
	Out    string `yaml:"deploy_out_dir" alias:"deploy_out"`
	Check  string `yaml:"deploy_check_hook" alias:"deploy_check"`
	Reload string `yaml:"deploy_post_hook" alias:"deploy_reload"`
	Group  string `yaml:"deploy_group"`
}

func (f *deployFlags) register(fs *flag.FlagSet, prefix string) {
	what := "the `FORMAT` to write: " + strings.Join(certdeploy.Formats(), ", ")
	if prefix != "" {
		what = "deploy every certificate in this `FORMAT` (" + strings.Join(certdeploy.Formats(), ", ") + ") at start and after\neach issuance and renewal (see certkeeper deploy --help)"
	}
	fs.StringVar(&f.Format, prefix+"format", "", what)
	fs.StringVar(&f.Out, prefix+"out-dir", "", "`DIR` to write the files into (created 0700 if missing)")
	fs.StringVar(&f.Check, prefix+"check-hook", "", "`CMD` (sh -c) that validates the new files, e.g. 'haproxy -c -f /etc/haproxy/haproxy.cfg';\nif it fails, the previous files are restored")
	fs.StringVar(&f.Reload, prefix+"post-hook", "", "`CMD` (sh -c) to run after a passing check when anything changed, e.g. 'systemctl reload haproxy'")
	fs.StringVar(&f.Group, prefix+"group", "", "`GROUP` (name or ID) that may read the files: 0640, directories 0750 (default: 0600, 0700);\nthe nginx layout needs its workers' group, www-data on Debian (they read the files at each handshake)")
	cmdline.Deprecated(fs, prefix+"out", prefix+"out-dir", nil)
	cmdline.Deprecated(fs, prefix+"check", prefix+"check-hook", nil)
	cmdline.Deprecated(fs, prefix+"reload", prefix+"post-hook", nil)
}

func (f *deployFlags) deployer(env *Env, flagPrefix string) (*certdeploy.Deployer, error) {
	if f.Out == "" {
		return nil, usagef("--%sout-dir DIR is required", flagPrefix)
	}
	if f.Format == "" {
		return nil, usagef("--%sformat FORMAT is required: %s", flagPrefix, strings.Join(certdeploy.Formats(), ", "))
	}
	if !certdeploy.KnownFormat(f.Format) {
		return nil, usagef("--%sformat %q: use %s", flagPrefix, f.Format, strings.Join(certdeploy.Formats(), ", "))
	}
	if f.Group != "" {
		if _, err := certdeploy.LookupGroup(f.Group); err != nil {
			return nil, usagef("--%sgroup: %v", flagPrefix, err)
		}
	} else if f.Format == certdeploy.Nginx {
		fmt.Fprintf(env.Stderr, "certkeeper: warning: nginx's workers read these files at each handshake as their own user (www-data on Debian, nginx on Red Hat): unless that is this user, give --%sgroup with their group, or each handshake fails\n", flagPrefix)
	}
	return &certdeploy.Deployer{Format: f.Format, Dir: f.Out, Check: f.Check, Reload: f.Reload, Group: f.Group, Logger: env.Logger}, nil
}

func deployCmd() *Command {
	f := &deployFlags{}
	var sf storageFlags
	var names cmdline.Names
	return &Command{
		UsageLine: "certkeeper deploy --format FORMAT --out-dir DIR [flags]",
		Short:     "write certificates for haproxy, nginx or any server that reads PEM files",
		Flags: func(fs *flag.FlagSet) {
			f.register(fs, "")
			cmdline.Bind(fs, &sf)
			fs.Var(&names, "d", "deploy only the certificate whose first name is `NAME`; repeatable (default: all)")
		},
		ArgsHint: "names go with -d, the layout with --format and --out-dir",
		Run: func(ctx context.Context, env *Env, args []string) error {
			d, err := f.deployer(env, "")
			if err != nil {
				return err
			}
			d.Output = env.Stderr // the hooks' output, as cert issue shows them
			want, err := normalizeNames("-d", names)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			n, changed, err := d.DeployStored(ctx, st, want)
			if errors.Is(err, certdeploy.ErrNothingStored) {
				return fmt.Errorf("no valid certificate in %s to deploy", sf.where())
			} else if err != nil {
				return err
			}
			state := "unchanged"
			if changed {
				state = "deployed"
			}
			fmt.Fprintf(env.Stdout, "%s %s to %s (%s)\n", state, cmdline.Plural(n, "certificate"), f.Out, f.Format)
			return nil
		},
	}
}
