package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/certfile/renew"
	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/hook"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/solver/http01"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/open"
)

func certCmd() *Command {
	return &Command{
		UsageLine: "certkeeper cert COMMAND [flags]",
		Short:     "obtain certificates as files",
		Commands:  []*Command{certIssueCmd(), certRenewCmd(), certShowCmd(), certRevokeCmd(), certDeleteCmd()},
	}
}

// issueFlags are the flags of "cert issue".
type issueFlags struct {
	// caFlags and renewable are the flags cert renew takes too
	// (registerCA).
	caFlags   `bind:"-"`
	renewable `bind:"-"`
	names     cmdline.Names `flag:"d" arg:"NAME" help:"a NAME (DNS name or IP address) for the certificate; repeat for more names (or give\nthem separated by commas), the first names the files"`
	noApex    bool          `flag:"no-apex" help:"do not add a.example when www.a.example is asked for"`
	csrFile   string        `flag:"csr" arg:"FILE" help:"issue for this PEM certificate request FILE (its key stays with you; only\ncerts/NAME.pem is written); names come from the CSR unless -d is given"`
	force     bool          `flag:"force" help:"order a new certificate even when --out-dir holds one for these names and settings\nthat is not due (it is kept otherwise, as certbot keeps it)"`
	dryRun    bool          `flag:"dry-run" help:"test the issuance: Let's Encrypt's staging CA instead of Let's Encrypt (another CA as given),\na temporary storage, no files written, nothing remembered, no deploy hook (certbot's --dry-run)"`
	hookFlags
	// fs is the parsed flag set: the flags given are remembered for
	// renewals (renewconf.go).
	fs *flag.FlagSet
	// posted is set once the post-hook ran (afterIssue).
	posted bool
	// apexAdded are the names request added: apexes of www. names.
	apexAdded []string
}

// hookFlags are the hooks of cert issue and cert renew, remembered per
// certificate (renew.Hooks runs them).
type hookFlags struct {
	deployHook string `flag:"deploy-hook" arg:"CMD" help:"CMD to run (with sh -c) after each certificate issued or renewed (remembered per certificate)"`
	preHook    string `flag:"pre-hook" arg:"CMD" help:"CMD to run once per run, before the first issuance or renewal (remembered per certificate)"`
	postHook   string `flag:"post-hook" arg:"CMD" help:"CMD to run once after a run that tried to issue or renew anything, failed or not (remembered per certificate)"`
}

// renewable are the flags of cert issue that cert renew takes too, but
// the CA's.
type renewable struct {
	storageFlags
	// --challenge's default is set by registerCA (http-01; request makes it dns-01 with --dns).
	challenge      string        `flag:"challenge" arg:"TYPE" help:"challenge TYPE that proves control of the names: http-01 (port 80), tls-alpn-01 (port 443),\ndns-01 (a TXT record through --dns; cert issue's default with --dns; the only one for\nwildcards) or dns-persist-01 (a record set once with dns-persist-record)"`
	httpAddr       string        `flag:"http-addr" arg:"ADDR" default:":80" help:"ADDR to answer http-01 on; the CA connects to port 80, so change it only\nbehind a port forward"`
	webroot        webrootDir    `flag:"webroot" arg:"DIR" help:"answer http-01 through the web server that serves DIR on port 80 (it keeps running):\neach token is written under DIR/.well-known/acme-challenge/ and removed after (certbot's\n--webroot -w DIR)"`
	tlsAddr        string        `flag:"tls-alpn-addr" arg:"ADDR" default:":443" deprecated:"tls-addr" help:"ADDR to answer tls-alpn-01 on; the CA connects to port 443"`
	outDir         string        `flag:"out-dir" arg:"DIR" help:"write DIR/private/NAME.key and DIR/certs/NAME.pem (leaf + chain) here\n(default: /etc/ssl for root, else ~/.acme)"`
	preferredChain string        `flag:"preferred-chain" arg:"NAME" help:"among the chains the CA offers, prefer the one whose top certificate is issued by\nthis common NAME (e.g. \"ISRG Root X1\")"`
	noWait         bool          `flag:"no-wait" help:"if the CA answers rateLimited, fail at once naming the time to retry instead of waiting"`
	timeout        time.Duration `flag:"timeout" arg:"DURATION" default:"10m" help:"give up after this DURATION"`
	dns            dnsConfig     `yaml:",inline"`
}

func (f *issueFlags) register(fs *flag.FlagSet) {
	f.fs = fs
	f.registerCA(fs)
	cmdline.Bind(fs, f)
}

// registerCA registers every flag of cert issue but -d, --no-apex and
// --csr: what cert renew needs too. --tls-addr is the proxy's HTTPS
// listener: here it is a deprecated name of --tls-alpn-addr.
func (f *issueFlags) registerCA(fs *flag.FlagSet) {
	f.caFlags.register(fs, caLocal|caEmail|caEAB|caOrder)
	f.challenge = acmeca.HTTP01
	cmdline.Bind(fs, &f.renewable)
}

func certIssueCmd() *Command {
	f := &issueFlags{}
	return &Command{
		UsageLine:  "certkeeper cert issue -d NAME [-d NAME...] [flags]",
		OtherNames: []string{"certonly (certbot)", "run (lego)"},
		Short:      "obtain one certificate and write it as files",
		Flags:      f.register,
		ArgsHint:   "names go with -d",
		Spellings:  otherTools,
		Run: func(ctx context.Context, env *Env, args []string) error {
			return issueCert(ctx, env, f)
		},
	}
}

// defaultDirs fills in --storage and --out-dir when they were not given,
// and refuses a --timeout of 0 or less (0 gave up at once, saying another
// run held the directory: a trial).
func (f *issueFlags) defaultDirs() error {
	if f.timeout <= 0 {
		return usagef("--timeout %s: give how long to wait, more than 0 (e.g. 10m)", f.timeout)
	}
	if f.Storage == "" {
		f.Storage = certkeeper.DefaultStorageDir()
	}
	if f.outDir == "" {
		d, err := certfile.DefaultDir()
		if err != nil {
			return fmt.Errorf("no --out-dir given and no default: %w", err)
		}
		f.outDir = string(d)
	}
	return nil
}

// issueCert runs "cert issue".
func issueCert(ctx context.Context, env *Env, f *issueFlags) error {
	start := time.Now()
	names, csrDER, keyType, err := f.request()
	if err != nil {
		return err
	}
	if f.KeyType != "" && !strings.EqualFold(f.KeyType, string(keyType)) { // another tool's name, remembered as ours
		fmt.Fprintf(env.Stderr, "certkeeper: --key-type %s is %s\n", f.KeyType, keyType)
	}
	if f.dryRun {
		cleanup, err := f.dryRunSetup()
		if err != nil {
			return err
		}
		defer cleanup()
	}
	if err := f.defaultDirs(); err != nil {
		return err
	}
	names = f.noteNames(env, names, csrDER) // in --out-dir, given or the default
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	st, closeStorage, err := openStorage(ctx, env, f.storageFlags, 5*time.Second) // cert renew's lease
	if err != nil {
		return err
	}
	defer closeStorage()
	say := func(s string) { fmt.Fprintf(env.Stderr, "certkeeper: %s (--timeout %s)\n", s, f.timeout) }
	unlock, err := renew.LockDir(ctx, st, certfile.Dir(f.outDir), say) // another cert issue or renew there goes first; f.keep may keep its certificate
	if err != nil {
		return err
	}
	defer unlock()
	if kept, err := f.keep(ctx, env, st, names, csrDER); kept || err != nil {
		return err
	}
	if f.postHook != "" {
		defer f.postHookAfterFailure(ctx, env)
	}
	if f.preHook != "" {
		if err := hook.RunTo(ctx, env.Stderr, "the pre-hook", f.preHook); err != nil {
			return fmt.Errorf("--pre-hook failed, nothing issued: %w", err)
		}
	}
	progress := func(step string) { fmt.Fprintf(env.Stderr, "certkeeper: %s\n", step) }

	iss, closeSolvers, err := f.issuer(env, st)
	if err != nil {
		return err
	}
	defer closeSolvers()
	if err := engine.CheckDNS(ctx, iss, names); err != nil {
		return fmt.Errorf("nothing was ordered: %w", explainIssueError(err, f))
	}

	req := certkeeper.IssueRequest{Names: names, Issuers: &issuer.Chain{Issuers: []issuer.Issuer{iss}}, KeyType: keyType, CSR: csrDER,
		Email: f.Email, Progress: progress}
	var before *renew.Previous // what issuing the same name again replaces, said after
	if csrDER == nil {
		req.Replaces = storage.CurrentLeaf(ctx, st, iss.ID(), names)
		before = renew.ReadPrevious(certfile.Dir(f.outDir), names[0])
	}
	got, paths, err := renew.IssueFiles(ctx, certfile.Dir(f.outDir), st, req)
	var werr *renew.WriteError
	switch {
	case errors.As(err, &werr) && werr.BeforeOrder:
		return fmt.Errorf("the certificate files cannot be written in --out-dir %s, so nothing was ordered: %w", f.outDir, werr.Err)
	case errors.As(err, &werr) && csrDER != nil:
		return werr.Err
	case errors.As(err, &werr):
		return fmt.Errorf("writing the certificate files (the certificate is safe in %s): %w", f.where(), werr.Err)
	case err != nil:
		return explainIssueError(err, f)
	}
	cert, notAfter := got.Certificate, got.Certificate.Leaf.NotAfter.UTC().Format(time.RFC3339)
	if f.dryRun {
		progress(fmt.Sprintf("done in %s", time.Since(start).Round(time.Millisecond)))
		fmt.Fprintf(env.Stdout, "dry run: %s validated, a test certificate issued by %s; nothing written or remembered\n", strings.Join(names, ","), cert.Issuer)
		return f.afterIssue(ctx, env, names, paths, cert.Leaf.NotAfter)
	}
	if csrDER != nil {
		progress(fmt.Sprintf("done in %s", time.Since(start).Round(time.Millisecond)))
		progress(fmt.Sprintf("cert renew does not renew a certificate for a CSR (the key is yours, not in %s): run this command again before %s", f.outDir, notAfter))
		fmt.Fprintf(env.Stdout, "issued %s by %s, not_after %s, cert %s, key (yours, from the CSR)\n", strings.Join(names, ","), cert.Issuer, notAfter, paths.Cert)
		return f.afterIssue(ctx, env, names, paths, cert.Leaf.NotAfter)
	}
	settings, err := f.remember(names[0])
	if err != nil {
		return fmt.Errorf("the certificate files are written, but not how to renew them (cert renew will use its flags' defaults): %w", err)
	}
	f.noteSecrets(settings, progress)
	if changes := before.Changes(names, settings); changes != "" {
		progress(fmt.Sprintf("replaced the certificate of %s: %s", names[0], changes))
	}
	progress(fmt.Sprintf("done in %s", time.Since(start).Round(time.Millisecond)))
	fmt.Fprintf(env.Stdout, "issued %s by %s, not_after %s, cert %s, key %s\n", strings.Join(names, ","), cert.Issuer, notAfter, paths.Cert, paths.Key)
	env.Logger.Info("certificate obtained", slog.Any("names", names), slog.String("issuer", cert.Issuer),
		slog.Time("not_after", cert.Leaf.NotAfter))
	return f.afterIssue(ctx, env, names, paths, cert.Leaf.NotAfter)
}

// noteSecrets says which secrets given were not remembered in settings,
// and so what cert renew will need again.
func (f *issueFlags) noteSecrets(settings renew.Settings, progress func(string)) {
	if settings.Storage != f.Storage && open.IsURL(f.Storage) { // a URL's password
		progress("the password in --storage's URL is not remembered: cert renew will need --storage URL again")
	}
	if f.dns.TSIGKey != "" && f.challenge == acmeca.DNS01 {
		progress("the key given with --tsig-key is not remembered: cert renew will need --tsig-key-file FILE (or --tsig-key again); issue with --tsig-key-file to have it remembered")
	}
}

// rememberedHooks gives this run the hooks remembered for name in --out-dir
// that it was not given: cert renew may have added them, and a
// provisioning script's cert issue run again dropped them (a trial's nginx
// reload hook), and ordered a certificate for the difference. An empty
// --deploy-hook (or pre or post hook) drops one.
func (f *issueFlags) rememberedHooks(env *Env, name string) error {
	prev := renew.ReadPrevious(certfile.Dir(f.outDir), name)
	if prev == nil {
		return nil
	}
	for _, h := range []struct{ flag, value string }{{"pre-hook", prev.Settings.PreHook}, {"deploy-hook", prev.Settings.DeployHook}, {"post-hook", prev.Settings.PostHook}} {
		if h.value == "" || cmdline.Given(f.fs, h.flag) {
			continue
		}
		if err := f.fs.Set(h.flag, h.value); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "certkeeper: --%s %s, remembered for %s (--%[1]s '' drops it)\n", h.flag, cmdline.ShellQuote(h.value), name)
	}
	return nil
}

// noteNames says which names request added (the apex of a www. name,
// which may not point here), and returns names in the order of the
// certificate --out-dir holds for them, if it holds one (renew.NamedFor).
func (f *issueFlags) noteNames(env *Env, names []string, csrDER []byte) []string {
	if len(f.apexAdded) > 0 {
		fmt.Fprintf(env.Stderr, "certkeeper: adding %s, the apex of a www. name given (--no-apex leaves it out)\n", strings.Join(f.apexAdded, ", "))
	}
	if named := renew.NamedFor(certfile.Dir(f.outDir), names); csrDER == nil && named[0] != names[0] {
		fmt.Fprintf(env.Stderr, "certkeeper: %s holds a certificate for these names named for %s: it is that one's\n", f.outDir, named[0])
		return named
	}
	return names
}

// keep gives the run the hooks remembered for names (rememberedHooks), and
// reports whether cert issue keeps the certificate --out-dir holds
// for names (renew.Kept: the same names and settings, not due), and says
// so: nothing is ordered and no hook runs, as with certbot's certonly,
// unless the deploy hook of the run that wrote it has yet to succeed.
func (f *issueFlags) keep(ctx context.Context, env *Env, st storage.Storage, names []string, csrDER []byte) (bool, error) {
	if csrDER != nil {
		return false, nil
	}
	if err := f.rememberedHooks(env, names[0]); err != nil { // kept or not, the run has them
		return false, err
	}
	if f.force || f.dryRun {
		return false, nil
	}
	s, err := f.settings()
	if err != nil {
		return false, err
	}
	var ari renew.RenewalInfoer // the CA's window, as cert renew asks for it
	if !f.local() {
		if iss, err := f.acmeIssuer(env, f.ca(), st); err == nil {
			ari = iss
		}
	}
	dir := certfile.Dir(f.outDir)
	notAfter, due, ok := renew.Kept(ctx, dir, names, s, ari, time.Now())
	p, err := dir.Paths(names[0])
	if !ok || err != nil {
		return false, nil
	}
	fmt.Fprintf(env.Stderr, "certkeeper: %s already holds this certificate, with these names, CA, account and key type, not due for renewal until %s: nothing ordered (--force orders a new one now)\n",
		f.outDir, due.UTC().Format(time.RFC3339))
	fmt.Fprintf(env.Stdout, "kept %s, not_after %s, cert %s, key %s\n", strings.Join(names, ","), notAfter.UTC().Format(time.RFC3339), p.Cert, p.Key)
	if changes := renew.ReadPrevious(dir, names[0]).Changes(names, s); changes != "" { // how it is validated or deployed
		if _, err := f.remember(names[0]); err != nil {
			return true, err
		}
		fmt.Fprintf(env.Stderr, "certkeeper: %s (remembered for its next renewals; no order: they do not change the certificate)\n", changes)
	}
	if f.deployHook != "" && renew.DeployIsPending(dir, names[0]) {
		fmt.Fprintln(env.Stderr, "certkeeper: the deploy hook did not succeed when these files were written: running it again")
		return true, f.afterIssue(ctx, env, names, p, notAfter)
	}
	return true, nil
}

// postHookAfterFailure runs the post-hook if afterIssue did not: it
// undoes the pre-hook (a web server stopped to free port 80), so it runs
// after a failure too, as certbot's does.
func (f *issueFlags) postHookAfterFailure(ctx context.Context, env *Env) {
	if f.posted {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := hook.RunTo(ctx, env.Stderr, "the post-hook", f.postHook); err != nil {
		fmt.Fprintf(env.Stderr, "certkeeper: --post-hook failed: %v\n", err)
	}
}

// dryRunSetup points the flags at a trial (--dry-run): Let's Encrypt's
// staging CA for Let's Encrypt, a temporary storage (so a test account
// and certificate never reach the real one) and out-dir, removed by the
// returned func, and no deploy hook.
func (f *issueFlags) dryRunSetup() (func(), error) {
	dir, err := os.MkdirTemp("", "certkeeper-dry-run-")
	if err != nil {
		return nil, fmt.Errorf("--dry-run: %w", err)
	}
	if engine.CAURL(f.ca()) == acmeca.LetsEncrypt {
		f.CA = []string{"staging"}
	}
	f.storageFlags = storageFlags{Storage: filepath.Join(dir, "storage")}
	f.outDir, f.deployHook = filepath.Join(dir, "out"), ""
	return func() { os.RemoveAll(dir) }, nil
}

// afterIssue runs --deploy-hook and --post-hook (renew.Hooks.Issued) for
// the certificate just written.
func (f *issueFlags) afterIssue(ctx context.Context, env *Env, names []string, paths certfile.Paths, notAfter time.Time) error {
	f.posted = true
	res := &renew.Result{Names: names, Paths: paths, NotAfter: notAfter,
		Settings: renew.Settings{DeployHook: f.deployHook, PostHook: f.postHook}}
	dir := certfile.Dir(f.outDir)
	if f.dryRun || f.csrFile != "" {
		dir = "" // nothing renews it: no deploy hook to run again
	}
	if err := (&renew.Hooks{Output: env.Stderr}).IssuedFiles(ctx, dir, res); err != nil {
		return fmt.Errorf("the certificate files are written, but: %w", err)
	}
	return nil
}

// request checks the flags of cert issue and returns what to issue: the
// names (from -d, else from --csr), the --csr request if any, and the key
// type.
func (f *issueFlags) request() ([]string, []byte, issuer.KeyType, error) {
	var csrDER []byte
	var csrNames []string
	if f.csrFile != "" {
		der, inCSR, err := readCSR(f.csrFile)
		if err != nil {
			return nil, nil, "", err
		}
		csrDER, csrNames = der, inCSR
		f.noApex = true // the CSR's names are what the CA will sign
		if len(f.names) == 0 {
			f.names = csrNames
		}
	}
	if len(f.names) == 0 {
		return nil, nil, "", usagef("no names: give at least one with -d, e.g. -d a.example")
	}
	names, err := normalizeNames("-d", f.names)
	if err != nil {
		return nil, nil, "", err
	}
	if !f.noApex {
		n := len(names)
		names = hostname.WithApex(names)
		f.apexAdded = names[n:]
	}
	if inCSR, _ := normalizeNames("--csr", csrNames); csrDER != nil && !slices.Equal(slices.Sorted(slices.Values(names)), slices.Sorted(slices.Values(inCSR))) {
		return nil, nil, "", usagef("-d %s: --csr %s is for %s, and a CSR is signed: its names cannot change: give them, or no -d", strings.Join(names, " -d "), f.csrFile, strings.Join(inCSR, ", "))
	}
	if err := f.checkPublic(names); err != nil {
		return nil, nil, "", err
	}
	keyType, err := issuer.ParseKeyType(f.KeyType)
	if err != nil {
		return nil, nil, "", usagef("--key-type: %v", err)
	}
	if err := f.dns.checkWithoutProvider(); err != nil {
		return nil, nil, "", err
	}
	if !cmdline.Given(f.fs, "challenge") { // --dns means dns-01, as for the proxy
		f.challenge = engine.OneShotChallenge(f.dns.Provider != "")
	}
	switch f.challenge {
	case acmeca.HTTP01, acmeca.TLSALPN01:
		if f.dns.Provider != "" {
			return nil, nil, "", usagef("--dns sets dns-01 records, which --challenge %s does not use: drop one of them", f.challenge)
		}
		if i := slices.IndexFunc(names, isWildcard); i >= 0 && !f.local() {
			return nil, nil, "", usagef("%s is a wildcard, which the CA validates only through DNS: give --dns PROVIDER "+
				"(dns-01; see docs/dns.md) or --challenge dns-persist-01", names[i])
		}
	case acmeca.DNS01, acmeca.DNSPersist01:
	default:
		return nil, nil, "", usagef("--challenge %q: use http-01, tls-alpn-01, dns-01 or dns-persist-01", f.challenge)
	}
	return names, csrDER, keyType, nil
}

func isWildcard(name string) bool { return strings.HasPrefix(name, "*.") }

// checkPublic refuses, before anything is asked of it, names Let's
// Encrypt cannot issue for (hostname.NotPublic); another CA may be an
// internal one that can.
func (f *issueFlags) checkPublic(names []string) error {
	if ca := engine.CAURL(f.ca()); ca != acmeca.LetsEncrypt && ca != acmeca.LetsEncryptStaging {
		return nil
	}
	for _, n := range names {
		if why := hostname.NotPublic(n); why != "" {
			return usagef("%s: Let's Encrypt cannot issue for it (%s): for development give --ca local "+
				"(certkeeper's own CA, no network), or your own ACME CA with --ca URL", n, why)
		}
	}
	return nil
}

// issuer is the issuer the flags choose, with a func that stops its
// challenge listener.
func (f *issueFlags) issuer(env *Env, st storage.Storage) (issuer.Issuer, func(), error) {
	if err := f.checkWebroot(); err != nil {
		return nil, nil, err
	}
	if f.local() {
		// The local CA validates nothing, but --dns flags that a real CA's
		// run would refuse are refused here too, so a rehearsal with
		// --ca local finds them.
		if _, err := f.dns.provider(env); err != nil {
			return nil, nil, err
		}
		iss, err := f.issuerFor(env, f.ca(), st)
		return iss, func() {}, err
	}
	return newACMEIssuer(env, f, st)
}

// checkWebroot refuses --webroot with another challenge or address, and a
// DIR that is not a directory.
func (f *renewable) checkWebroot() error {
	switch {
	case f.webroot == "":
		return nil
	case f.challenge != acmeca.HTTP01:
		return usagef("--webroot answers http-01, not --challenge %s: drop one of them", f.challenge)
	case f.httpAddr != ":80":
		return usagef("--webroot answers http-01 through your web server, so nothing listens on --http-addr %s: drop one of them", f.httpAddr)
	}
	if err := (&http01.Webroot{Dir: string(f.webroot)}).Check(); err != nil {
		return usagef("--webroot %s: %v: give the directory your web server serves on port 80 (nginx: its root)", f.webroot, errors.Unwrap(err))
	}
	return nil
}

// webrootDir is --webroot's value. A word starting with "-" is refused:
// certbot's "--webroot -w DIR" would otherwise make "-w" the directory.
type webrootDir string

func (d *webrootDir) String() string { return string(*d) }

func (d *webrootDir) Set(v string) error {
	if strings.HasPrefix(v, "-") {
		return errors.New("give the web server's directory: --webroot DIR (certbot's --webroot -w DIR)")
	}
	*d = webrootDir(v)
	return nil
}

// newACMEIssuer sets up the ACME issuer and starts the challenge listener,
// so a busy port fails before anything is ordered.
func newACMEIssuer(env *Env, f *issueFlags, st storage.Storage) (*acmeca.Issuer, func(), error) {
	iss, err := f.acmeIssuer(env, f.ca(), st)
	if err != nil {
		return nil, nil, err
	}
	iss.PreferredChain, iss.NoWait = f.preferredChain, f.noWait
	iss.AgreeTerms = func(tos string) bool {
		if tos != "" {
			fmt.Fprintf(env.Stderr, "certkeeper: registering an ACME account; by doing so you agree to the CA's terms: %s\n", tos)
		}
		return true
	}
	o := engine.OneShot{Challenge: f.challenge, HTTPAddr: f.httpAddr, Webroot: string(f.webroot), TLSALPNAddr: f.tlsAddr, DNSResolver: f.dns.resolver(), Logger: env.Logger}
	if f.challenge == acmeca.DNS01 {
		if o.DNS01, err = f.dns.solver(env); err != nil {
			return nil, nil, err
		}
		o.DNS01.OnWaiting = func(w dns01.Waiting) { fmt.Fprintf(env.Stderr, "certkeeper: %s\n", w) }
	}
	stop, err := o.Listen(iss)
	var lerr *engine.ListenError
	switch {
	case errors.As(err, &lerr) && f.challenge == acmeca.TLSALPN01:
		return nil, nil, portError(lerr.Err, f.tlsAddr, "--tls-alpn-addr", "tls-alpn-01", true)
	case errors.As(err, &lerr):
		return nil, nil, portError(lerr.Err, f.httpAddr, "--http-addr", "http-01", true)
	case err != nil:
		return nil, nil, err
	}
	return iss, stop, nil
}

// portError explains a challenge listener that could not start: another
// address or another challenge would do, and for cert issue (certIssue),
// which runs beside a web server, --webroot or alpn-proxy.
func portError(err error, addr, flagName, challenge string, certIssue bool) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		webroot := ""
		switch {
		case !certIssue: // the proxy has neither
		case challenge == acmeca.HTTP01:
			webroot = "answer through the web server that holds it with --webroot DIR (its document root), "
		case challenge == acmeca.TLSALPN01: // the web server keeps :443 (an alpn-proxy trial was told to stop it)
			webroot = "keep the web server there and put certkeeper alpn-proxy start in front of it, answering with --tls-alpn-addr 127.0.0.1:31443, "
		}
		return fmt.Errorf("port %s is already in use, so %s cannot be answered there: %s%s, choose another challenge with --challenge, or another address with %s", cmdline.PortOf(addr), challenge, webroot, cmdline.InUseAdvice(addr), flagName)
	}
	return cmdline.ListenError(err, addr, flagName, challenge)
}

// explainIssueError adds what to do to an issuance failure.
func explainIssueError(err error, f *issueFlags) error {
	var ierr *issuer.Error
	if errors.As(err, &ierr) && !ierr.RetryAfter.IsZero() && errors.Is(err, issuer.ErrRateLimited) {
		return fmt.Errorf("the CA rate-limited this request; it may be retried after %s (%s from now): %w",
			ierr.RetryAfter.UTC().Format(time.RFC3339), time.Until(ierr.RetryAfter).Round(time.Second), ierr.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) && !errors.As(err, new(*dns01.PropagationError)) { // that one is --dns-timeout's
		return fmt.Errorf("gave up after --timeout %s: %w", f.timeout, err)
	}
	if verr, ok := errors.AsType[*acmeca.ValidationError](err); ok && verr.Advice() != "" && !strings.HasPrefix(verr.Challenge, "dns-") { // doctor checks ports, not TXT records
		return fmt.Errorf("%w; certkeeper doctor -d %s checks this host's DNS and ports", err, verr.Name)
	}
	return err
}

// normalizeNames validates and normalises names given with label (-d,
// NAME; IP literals and wildcards allowed: the CA refuses what it cannot
// issue), dropping duplicates and keeping the order.
func normalizeNames(label string, in []string) ([]string, error) {
	out, err := hostname.Normalizer{AllowIP: true, AllowWildcard: true}.NormalizeAll(in)
	if err != nil {
		return nil, usagef("%s: %v", label, err)
	}
	return out, nil
}

// readCSR reads the --csr request (certfile.ParseCSR).
func readCSR(file string) ([]byte, []string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("--csr: %w", err)
	}
	der, names, err := certfile.ParseCSR(data)
	if err != nil {
		return nil, nil, fmt.Errorf("--csr %s: %w", file, err)
	}
	return der, names, nil
}
