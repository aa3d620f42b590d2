package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
)

// renewFlags are the flags of "cert renew": those of cert issue but -d,
// and the batch's own.
type renewFlags struct {
	issueFlags
	grace      string
	force      bool
	dryRun     bool
	newKey     bool
	want       string
	deployHook string
	preHook    string
	postHook   string
}

func certRenewCmd() *Command {
	f := &renewFlags{}
	return &Command{
		UsageLine: "certkeeper cert renew [flags]",
		Short:     "renew the certificate files that are due (for cron)",
		Long: `Renew walks every key/certificate pair in --out-dir (DIR/private/NAME.key with
DIR/certs/NAME.pem; a certificate without its key, such as the system's CA certificates in
/etc/ssl/certs, is not a pair) and renews those that are due: in the CA's ARI window when it
offers one, else when a third of the lifetime is left (half, under 10 days), as certkeeper's
Manager does, never a fixed number of days. The previous certificate is kept as
certs/NAME.pem.old, the key is reused unless --new-key, files are replaced atomically, and a
pair that does not parse is reported and left alone. Runs on one --out-dir are serialised.

From cron, reloading nginx once if anything was renewed:

	certkeeper cert renew --out-dir /etc/ssl --post-hook 'systemctl reload nginx'

Renew what is within a week of expiry, and issue whatever a want list names but is missing:

	certkeeper cert renew --grace 7d --want /etc/certkeeper/want.txt

(want.txt: one certificate per line, its names separated by spaces; the first names the files.)

A deploy hook runs once per renewed certificate with CERTKEEPER_NAME, CERTKEEPER_NAMES,
CERTKEEPER_CERT_FILE, CERTKEEPER_KEY_FILE and CERTKEEPER_NOT_AFTER in its environment.
Exit status: 0 all good, 1 something failed (each is named in the summary), 2 bad usage.`,
		Flags: func(fs *flag.FlagSet) {
			f.registerCA(fs)
			fs.StringVar(&f.grace, "grace", "", "renew what expires within this `DURATION` (e.g. 7d, 36h) instead of the usual rule")
			fs.BoolVar(&f.force, "force", false, "renew every pair, due or not")
			fs.BoolVar(&f.dryRun, "dry-run", false, "report what would be renewed and change nothing")
			fs.BoolVar(&f.newKey, "new-key", false, "give renewed certificates a new key (default: keep the key)")
			fs.StringVar(&f.want, "want", "", "`FILE` listing certificates to have: one per line, names separated by spaces")
			fs.StringVar(&f.deployHook, "deploy-hook", "", "`CMD` to run (with sh -c) after each renewed certificate")
			fs.StringVar(&f.preHook, "pre-hook", "", "`CMD` to run once before the first renewal of a run")
			fs.StringVar(&f.postHook, "post-hook", "", "`CMD` to run once after a run that renewed anything")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %q", args)
			}
			return renewFiles(ctx, env, f)
		},
	}
}

// parseGrace parses a duration, accepting a "d" suffix for days.
func parseGrace(s string) (time.Duration, error) {
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

// renewJob is one certificate the run considers.
type renewJob struct {
	base   string
	names  []string
	pair   *certfile.Pair // nil for a want-list entry with no files yet
	action string         // "renewed", "issued", "not due", "would renew", "failed", "unparsable"
	detail string
	due    bool
}

func renewFiles(ctx context.Context, env *Env, f *renewFlags) error {
	grace, err := parseGrace(f.grace)
	if err != nil {
		return usagef("--grace: %v", err)
	}
	if f.storageDir == "" {
		f.storageDir = defaultStorageDir()
	}
	if f.outDir == "" {
		d, err := certfile.DefaultDir()
		if err != nil {
			return fmt.Errorf("no --out-dir given and no default: %w", err)
		}
		f.outDir = string(d)
	}
	dir := certfile.Dir(f.outDir)
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// A short lease: a run killed by cron's timeout (or SIGKILL) holds up
	// the next run by at most 5 s; a live run renews its lease every 1.7 s.
	st, closeStorage, err := openStorage(ctx, env, storageSpec{URL: f.storageDir, KeyFile: f.storageKeyFile, PasswordFile: f.storagePassFile}, 5*time.Second)
	if err != nil {
		return err
	}
	defer closeStorage()
	abs, _ := filepath.Abs(f.outDir)
	sum := sha256.Sum256([]byte(abs))
	unlock, err := st.Lock(ctx, "certfile/"+hex.EncodeToString(sum[:8]))
	if err != nil {
		return fmt.Errorf("locking %s against another renew run: %w", f.outDir, err)
	}
	defer unlock()

	pairs, err := dir.Pairs()
	if err != nil {
		return err
	}
	var jobs []*renewJob
	have := map[string]bool{}
	for i := range pairs {
		p := &pairs[i]
		have[p.Base] = true
		j := &renewJob{base: p.Base, pair: p}
		if errors.Is(p.Err, certfile.ErrKeyMismatch) && !f.dryRun {
			if rec, err := repairPair(ctx, st, dir, p); err == nil {
				key, kerr := rec.PrivateKey()
				tc, cerr := rec.TLSCertificate()
				if kerr == nil && cerr == nil {
					p.Key, p.Chain, p.Err = key, []*x509.Certificate{tc.Leaf}, nil
					fmt.Fprintf(env.Stderr, "certkeeper: %s: key and certificate did not match; restored both from storage\n", p.Base)
				}
			} else {
				p.Err = fmt.Errorf("%w; repair: %v", p.Err, err)
			}
		}
		if p.Err != nil {
			j.action, j.detail = "unparsable", p.Err.Error()
		} else {
			j.names = certfile.Names(p.Chain[0], p.Base)
		}
		jobs = append(jobs, j)
	}
	wanted, err := readWant(f.want)
	if err != nil {
		return err
	}
	for _, names := range wanted {
		base, err := storage.NameSegment(names[0])
		if err != nil {
			return usagef("--want: %v", err)
		}
		if !have[base] {
			have[base] = true
			jobs = append(jobs, &renewJob{base: base, names: names, due: true})
		}
	}

	// Issuer and its challenge listener are set up only if something is due.
	var iss issuer.Issuer
	var ari *acmeca.Issuer
	closeIssuer := func() {}
	defer func() { closeIssuer() }()
	setup := func() error {
		if iss != nil {
			return nil
		}
		if strings.EqualFold(f.ca, "local") {
			iss = &localca.CA{Storage: st, Logger: env.Logger}
			return nil
		}
		a, closer, err := newACMEIssuer(env, &f.issueFlags, st)
		if err != nil {
			return err
		}
		iss, ari, closeIssuer = a, a, closer
		return nil
	}
	if !strings.EqualFold(f.ca, "local") && !f.dryRun {
		// ARI needs only the directory; the listener starts with setup.
		hc, err := caHTTPClient(f.caRoots)
		if err != nil {
			return err
		}
		ari = &acmeca.Issuer{DirectoryURL: caURL(f.ca), Storage: st, HTTPClient: hc, Logger: env.Logger}
	}

	now := time.Now()
	for _, j := range jobs {
		if j.pair == nil || j.action != "" {
			continue
		}
		leaf := j.pair.Chain[0]
		j.due, j.detail = isDue(ctx, leaf, now, grace, f.force, ari)
		if !j.due {
			j.action = "not due"
		}
	}

	renewed := 0
	preDone := false
	for _, j := range jobs {
		if !j.due || j.action != "" {
			continue
		}
		if f.dryRun {
			j.action = "would renew"
			continue
		}
		if f.email == "" {
			// Renewal needs no configuration: the contact recorded when the
			// certificate was issued names the account.
			f.email = recordedEmail(ctx, st, j.names)
		}
		if err := setup(); err != nil {
			return err
		}
		if !preDone && f.preHook != "" {
			if err := runHook(ctx, f.preHook, nil); err != nil {
				return fmt.Errorf("--pre-hook failed, nothing renewed: %w", err)
			}
		}
		preDone = true
		paths, notAfter, err := renewOne(ctx, env, f, dir, st, iss, j)
		if err != nil {
			j.action, j.detail = "failed", err.Error()
			continue
		}
		renewed++
		if j.pair == nil {
			j.action = "issued"
		} else {
			j.action = "renewed"
		}
		j.detail = "not_after " + notAfter.UTC().Format(time.RFC3339)
		if f.deployHook != "" {
			hookEnv := []string{
				"CERTKEEPER_NAME=" + j.names[0],
				"CERTKEEPER_NAMES=" + strings.Join(j.names, " "),
				"CERTKEEPER_CERT_FILE=" + paths.Cert,
				"CERTKEEPER_KEY_FILE=" + paths.Key,
				"CERTKEEPER_NOT_AFTER=" + notAfter.UTC().Format(time.RFC3339),
			}
			if err := runHook(ctx, f.deployHook, hookEnv); err != nil {
				j.action, j.detail = "failed", "deploy hook: "+err.Error()
			}
		}
	}
	if renewed > 0 && f.postHook != "" {
		if err := runHook(ctx, f.postHook, nil); err != nil {
			printSummary(env, jobs)
			return fmt.Errorf("the certificates were renewed, but --post-hook failed: %w", err)
		}
	}
	printSummary(env, jobs)
	failed := 0
	for _, j := range jobs {
		if j.action == "failed" || j.action == "unparsable" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d certificates failed or could not be read (see the summary)", failed, len(jobs))
	}
	return nil
}

// isDue applies --force, --grace, or the Manager's rule (ARI window when
// the CA offers one, else the lifetime rule).
func isDue(ctx context.Context, leaf *x509.Certificate, now time.Time, grace time.Duration, force bool, ari *acmeca.Issuer) (bool, string) {
	switch {
	case force:
		return true, "--force"
	case grace > 0:
		left := leaf.NotAfter.Sub(now)
		return left <= grace, fmt.Sprintf("expires in %s", left.Round(time.Second))
	}
	c := renewal.Cert{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: leaf.SerialNumber}
	why := "lifetime rule"
	if ari != nil {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ri, err := ari.RenewalInfo(actx, leaf)
		cancel()
		if err == nil && ri.HasWindow() {
			c.ARI = renewal.Window{Start: ri.SuggestedWindow.Start, End: ri.SuggestedWindow.End}
			why = "ARI window"
		}
	}
	due := renewal.Due(c, now, nil)
	if due.After(now) {
		return false, fmt.Sprintf("due %s (%s)", due.UTC().Format(time.RFC3339), why)
	}
	return true, why
}

// renewOne renews (or first issues) one certificate and writes its files.
func renewOne(ctx context.Context, env *Env, f *renewFlags, dir certfile.Dir, st storage.Storage, iss issuer.Issuer, j *renewJob) (certfile.Paths, time.Time, error) {
	var key crypto.Signer
	var prev *x509.Certificate
	if j.pair != nil {
		prev, key = j.pair.Chain[0], j.pair.Key
	}
	if key == nil || f.newKey {
		kt, err := issuer.ParseKeyType(f.keyType)
		if err != nil {
			return certfile.Paths{}, time.Time{}, err
		}
		if prev != nil && kt == issuer.ECDSAP256 {
			if t := issuer.KeyTypeOf(prev.PublicKey); t != "" {
				kt = t // a new key of the type the certificate had
			}
		}
		if key, err = kt.Generate(); err != nil {
			return certfile.Paths{}, time.Time{}, err
		}
	}
	csr, err := issuer.NewCSR(key, j.names)
	if err != nil {
		return certfile.Paths{}, time.Time{}, err
	}
	cert, err := iss.Issue(ctx, issuer.Request{Names: j.names, CSR: csr, Replaces: prev,
		Progress: func(s string) { fmt.Fprintf(env.Stderr, "certkeeper: %s: %s\n", j.names[0], s) }})
	if err != nil {
		return certfile.Paths{}, time.Time{}, explainIssueError(err, &f.issueFlags)
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		return certfile.Paths{}, time.Time{}, err
	}
	// Stored before the files are written: a run killed between the key
	// file and the certificate file leaves a pair that the next run
	// repairs from this copy.
	rec := &storage.Certificate{
		Names: j.names, Issuer: cert.Issuer, ChainPEM: cert.ChainPEM, KeyPEM: keyPEM,
		NotBefore: cert.Leaf.NotBefore, NotAfter: cert.Leaf.NotAfter, KeyType: string(issuer.KeyTypeOf(cert.Leaf.PublicKey)),
		Profile: cert.Profile, URL: cert.URL, Account: cert.Account, Email: f.email, Obtained: time.Now().UTC(),
	}
	data, err := storage.MarshalCertificate(rec)
	if err != nil {
		return certfile.Paths{}, time.Time{}, err
	}
	skey, err := storage.CertificateKey(cert.Issuer, j.names[0])
	if err != nil {
		return certfile.Paths{}, time.Time{}, err
	}
	if err := st.Store(ctx, skey, data); err != nil {
		return certfile.Paths{}, time.Time{}, fmt.Errorf("storing the new certificate (the files are unchanged): %w", err)
	}
	paths, err := dir.WriteKeepOld(j.names[0], keyPEM, cert.ChainPEM)
	if err != nil {
		return certfile.Paths{}, time.Time{}, err
	}
	return paths, cert.Leaf.NotAfter, nil
}

// repairPair rewrites a pair whose key and certificate do not match (a
// run killed between writing the two) from the copy in storage: the
// stored certificate for that name whose key or certificate is one of the
// two files.
func repairPair(ctx context.Context, st storage.Storage, dir certfile.Dir, p *certfile.Pair) (*storage.Certificate, error) {
	keyPEM, _ := os.ReadFile(p.Paths.Key)
	chainPEM, _ := os.ReadFile(p.Paths.Cert)
	var best *storage.Certificate
	match := func(k string) bool { return strings.HasSuffix(k, "/"+p.Base+".json") }
	err := storage.EachCertificate(ctx, st, match, func(_ string, _ []byte, rec *storage.Certificate, err error) bool {
		if err != nil {
			return true
		}
		if string(rec.KeyPEM) == string(keyPEM) || string(rec.ChainPEM) == string(chainPEM) {
			if best == nil || rec.NotAfter.After(best.NotAfter) {
				best = rec
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if best == nil {
		return nil, fmt.Errorf("no copy in storage matches its key or certificate")
	}
	if _, err := dir.Write(best.Names[0], best.KeyPEM, best.ChainPEM); err != nil {
		return nil, err
	}
	return best, nil
}

// readWant reads a want list: one certificate per line, names separated by
// spaces; blank lines and # comments are skipped.
func readWant(file string) ([][]string, error) {
	if file == "" {
		return nil, nil
	}
	fh, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("--want: %w", err)
	}
	defer fh.Close()
	var out [][]string
	sc := bufio.NewScanner(fh)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		names, err := normalizeNames(strings.Fields(text))
		if err != nil {
			return nil, usagef("--want %s line %d: %v", file, line, err)
		}
		out = append(out, names)
	}
	return out, sc.Err()
}

// runHook runs cmd with the shell, with extra environment variables.
func runHook(ctx context.Context, cmd string, extraEnv []string) error {
	var c *exec.Cmd
	if runtime.GOOS == "windows" {
		c = exec.CommandContext(ctx, "cmd", "/C", cmd)
	} else {
		c = exec.CommandContext(ctx, "sh", "-c", cmd)
	}
	c.Env = append(os.Environ(), extraEnv...)
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%q: %w: %s", cmd, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func printSummary(env *Env, jobs []*renewJob) {
	tw := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tRESULT\tDETAIL")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", j.base, j.action, j.detail)
	}
	tw.Flush()
}

// recordedEmail returns the contact email stored with the certificate for
// names (under any issuer), or "".
func recordedEmail(ctx context.Context, st storage.Storage, names []string) string {
	if len(names) == 0 {
		return ""
	}
	seg, err := storage.NameSegment(names[0])
	if err != nil {
		return ""
	}
	var email string
	match := func(k string) bool { return strings.HasSuffix(k, "/"+seg+".json") }
	_ = storage.EachCertificate(ctx, st, match, func(_ string, _ []byte, rec *storage.Certificate, err error) bool {
		if err == nil && rec.Email != "" {
			email = rec.Email
			return false
		}
		return true
	})
	return email
}
