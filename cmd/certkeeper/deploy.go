package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/certdeploy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// deployFlags are the flags of "deploy", and of proxy's --deploy mode.
type deployFlags struct {
	format, out, check, reload string
}

func (f *deployFlags) register(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&f.format, prefix+"format", "", "the `FORMAT` to write: "+strings.Join(certdeploy.Formats, ", "))
	fs.StringVar(&f.out, prefix+"out", "", "`DIR` to write the files into (created 0700 if missing)")
	fs.StringVar(&f.check, prefix+"check", "", "`CMD` (sh -c) that validates the new files, e.g. 'haproxy -c -f /etc/haproxy/haproxy.cfg';\nif it fails, the previous files are restored")
	fs.StringVar(&f.reload, prefix+"reload", "", "`CMD` (sh -c) to run after a passing check when anything changed, e.g. 'systemctl reload haproxy'")
}

func (f *deployFlags) deployer(env *Env, flagPrefix string) (*certdeploy.Deployer, error) {
	if f.out == "" {
		return nil, usagef("--%sout DIR is required", flagPrefix)
	}
	switch f.format {
	case certdeploy.HAProxy, certdeploy.PEM, certdeploy.Nginx:
	default:
		return nil, usagef("--%sformat %q: use %s", flagPrefix, f.format, strings.Join(certdeploy.Formats, ", "))
	}
	return &certdeploy.Deployer{Format: f.format, Dir: f.out, Check: f.check, Reload: f.reload, Logger: env.Logger}, nil
}

func deployCmd() *Command {
	f := &deployFlags{}
	var storageDir string
	var names stringsFlag
	return &Command{
		UsageLine: "certkeeper deploy --format FORMAT --out DIR [flags]",
		Short:     "write certificates for haproxy, nginx or any server that reads PEM files",
		Long: `Deploy writes the certificates in --storage (the newest valid one per name) into --out in the
layout a server reads, each file atomically, then runs --check and, only if it passes and something
changed, --reload. If the check fails, the previous files are put back and the error names the
certificate the check complained about, so one bad file never takes the server down.

haproxy (one combined PEM per certificate, and DIR/crt-list naming them):

	certkeeper deploy --format haproxy --out /etc/haproxy/certs \
		--check 'haproxy -c -f /etc/haproxy/haproxy.cfg' --reload 'systemctl reload haproxy'
	# haproxy.cfg:  bind :443 ssl crt-list /etc/haproxy/certs/crt-list

nginx (DIR/NAME/fullchain.pem and privkey.pem, and DIR/certkeeper.conf mapping names to them):

	certkeeper deploy --format nginx --out /etc/nginx/certkeeper --check 'nginx -t' --reload 'nginx -s reload'
	# http { include /etc/nginx/certkeeper/certkeeper.conf; server { listen 443 ssl;
	#        ssl_certificate $certkeeper_cert; ssl_certificate_key $certkeeper_key; } }

pem (DIR/NAME/cert.pem, chain.pem, fullchain.pem, privkey.pem, like certbot's live/):

	certkeeper deploy --format pem --out /etc/ssl/certkeeper -d a.example

To deploy after every issuance and renewal, run the proxy with --deploy-format and --deploy-out.
Files are 0600; run deploy as the user the server reads them as (or root).`,
		Flags: func(fs *flag.FlagSet) {
			f.register(fs, "")
			fs.StringVar(&storageDir, "storage", "", "`DIR` of certkeeper's state (default as for cert issue)")
			fs.Var(&names, "d", "deploy only the certificate whose first name is `NAME`; repeatable (default: all)")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %q", args)
			}
			d, err := f.deployer(env, "")
			if err != nil {
				return err
			}
			if storageDir == "" {
				storageDir = defaultStorageDir()
			}
			want, err := normalizeNames(names)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			certs, err := certdeploy.Stored(ctx, filestore.New(storageDir), want)
			if err != nil {
				return err
			}
			if len(certs) == 0 {
				return fmt.Errorf("no valid certificate in %s to deploy", storageDir)
			}
			changed, err := d.Deploy(ctx, certs)
			if err != nil {
				return err
			}
			state := "unchanged"
			if changed {
				state = "deployed"
			}
			fmt.Fprintf(env.Stdout, "%s %d certificates to %s (%s)\n", state, len(certs), f.out, f.format)
			return nil
		},
	}
}
