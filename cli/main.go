// Package cli is the certkeeper command: cmd/certkeeper's main calls Main,
// and a program that builds certkeeper with more in it (see docs/dns.md)
// calls it too.
//
// Each subcommand lives in its own file (its long help in help/NAME.txt)
// and turns flags into the library's configuration and runs it: nothing
// here holds logic the library lacks. "certkeeper help" lists them.
package cli

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/certkeeper/certkeeper/dnsprovider"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/logsetup"
	"github.com/certkeeper/certkeeper/storage/redisstore"
	"github.com/redis/go-redis/v9"
)

// Env is what a command may touch of the outside world; tests replace it.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	// Logger is set up from --log-format and --log-level before Run.
	Logger *slog.Logger
	// stderr is Stderr as given, before --log-format json wrapped it.
	stderr io.Writer
	// dnsProviders are the --dns providers compiled in (WithDNSProvider).
	dnsProviders []dnsprovider.Provider
	// fromEnv are the flags set from the environment, with their
	// variables (cmdline.FromEnv).
	fromEnv map[string]string
	// warned are the key files warned about, once per run (cert renew
	// reads one per certificate).
	warned map[string]bool
	// human: a text log in the style of the command's own lines
	// (logsetup.NewHuman), for a command that is not a service.
	human bool
	// unquiet, when set, takes the warnings about exposed secrets that
	// cert renew --quiet, which otherwise prints only a failure, prints
	// even so: its cron run is where a key file is used unattended.
	unquiet io.Writer
}

// setLogging sets up env's Logger (and, for json, Stderr) for the log
// format and level; run calls it for the flags, proxy and server again
// for their config file's log_format and log_level.
func (env *Env) setLogging(format, level string) error {
	if env.stderr == nil {
		env.stderr = env.Stderr
	}
	logger, err := newLogger(env.stderr, format, level, env.human)
	if err != nil {
		return err
	}
	env.Logger = logger
	env.Stderr = env.stderr
	if format == "json" {
		env.Stderr = logsetup.NewLines(env.stderr) // the human lines become JSON records too
	}
	return nil
}

// usageError marks bad usage: exit status 2 and a pointer to --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitStatus ends a command with this exit status and no message: its
// output said it all (status --nagios).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Main runs the certkeeper command with os.Args and exits with its status:
// 0 on success, 1 on failure, 2 on bad usage. SIGINT and SIGTERM cancel the
// command's context: a command they stop while it works exits with
// 128+the signal's number (130, 143), as shells and curl do; proxy and
// server stop cleanly and exit 0. A second signal kills at once, drain or
// not. opts add to the command what a program building certkeeper brings
// (WithDNSProvider); cmd/certkeeper passes none.
func Main(opts ...Option) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		signal.Stop(sigs) // a second Ctrl-C does not wait for the drain: it kills
		if sig, ok := sig.(syscall.Signal); ok {
			cancel(interruptedError{sig})
		}
	}()
	// go-redis's process-wide logger writes at debug to the one Run's, and
	// so does the log package's (net/http's Transport writes there), so a
	// JSON log stays JSON.
	opts = append(opts, func(env *Env) error {
		redis.SetLogger(redisstore.Logs(func() *slog.Logger { return env.Logger }))
		log.SetFlags(0)
		log.SetOutput(logsetup.StdLog{Logger: func() *slog.Logger { return env.Logger }, Level: slog.LevelDebug, Fallback: os.Stderr})
		return nil
	})
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr, opts...)
	signal.Stop(sigs)
	os.Exit(code)
}

// interruptedError is the cause of Main's context when a signal ends it.
type interruptedError struct{ sig syscall.Signal }

func (e interruptedError) Error() string { return "interrupted by " + e.sig.String() }

// Run runs the certkeeper command line args (without the program name),
// writing to stdout and stderr, and returns the exit status Main would exit
// with. It is for programs that embed the command; ctx ends long-running
// commands (proxy, server) as a signal does.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...Option) int {
	env := &Env{Stdout: stdout, Stderr: stderr}
	for _, o := range opts {
		if err := o(env); err != nil {
			// A mistake in the program that built this binary, not in
			// the command line.
			fmt.Fprintf(stderr, "certkeeper: %v\n", err)
			return exitFailure
		}
	}
	return run(ctx, env, args)
}

// Option adds to the command something a program building certkeeper
// brings: see WithDNSProvider.
type Option func(env *Env) error

// WithDNSProvider adds p to the providers --dns takes, with its settings
// (--dns-setting, --dns-setting-file, the dns_setting and
// dns_setting_file config keys), and lists it in the --help of every
// command with --dns. A p that fails Validate, or whose name another
// provider has, makes Run fail before it parses the command line.
func WithDNSProvider(p dnsprovider.Provider) Option {
	return func(env *Env) error {
		if err := p.Validate(); err != nil {
			return err
		}
		taken := dnsprovider.Builtin()
		taken = append(taken, env.dnsProviders...)
		for _, q := range taken {
			if q.Name == p.Name {
				return fmt.Errorf("DNS provider %s is given twice (or is built in)", p.Name)
			}
		}
		env.dnsProviders = append(env.dnsProviders, p)
		return nil
	}
}

// root is the command tree, each command's long help read from help/
// (withHelp).
func root() *Command {
	return withHelp(&Command{
		UsageLine: "certkeeper COMMAND [flags]",
		Short:     "certificates that manage themselves",
		Commands:  []*Command{proxyCmd(), serverCmd(), alpnProxyCmd(), statusCmd(), doctorCmd(), certCmd(), accountCmd(), dnsPersistRecordCmd(), caCmd(), selfSignedCmd(), nginxPluginCmd(), storageCmd(), serviceCmd(), importCmd(), deployCmd(), versionCmd(), completionCmd()},
	})
}

// helpTexts are the commands' long help texts, a file each, named for
// the command's words joined by "-" (help/cert-issue.txt), the root's
// help/certkeeper.txt. They are prose with examples, kept out of the Go
// code so that the code reads as flags and calls, and the text as text
// (docs/decisions.md); TestHelpFiles checks that each command has one.
//
//go:embed help/*.txt
var helpTexts embed.FS

// withHelp sets the Long help of c and of every command under it from
// helpTexts, and returns c.
func withHelp(c *Command) *Command {
	name := strings.ReplaceAll(c.FullName(), " ", "-")
	if name == "" {
		name = "certkeeper"
	}
	text, err := helpTexts.ReadFile("help/" + name + ".txt")
	if err != nil {
		panic(fmt.Sprintf("cli: no help text for %q: %v", c.FullName(), err)) // a file missing from help/: TestHelpFiles
	}
	c.Long = string(text)
	for _, sub := range c.Commands {
		withHelp(sub)
	}
	return c
}

// run executes args and returns the exit status.
//
// Flags may come before and after a command's arguments, and before its
// subcommand's name: "alpn-proxy --fallback ADDR start" gives --fallback to
// start. See cmdline.Parse and cmdline.Resolve.
func run(ctx context.Context, env *Env, args []string) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(env.Stdout, versionString())
		return exitOK
	}
	cmd, words, help, missing, err := cmdline.Resolve(root(), args, globalFlags)
	if gerr, ok := errors.AsType[*cmdline.GroupError](err); ok {
		where := "certkeeper" + prefixSpace(gerr.Group)
		if gerr.Unknown {
			where = "certkeeper"
		}
		if logsetup.JSONAsked(args, os.Getenv(envPrefix+"LOG_FORMAT")) { // a JSON record too, before the flags are read
			_ = env.setLogging("json", "")
		}
		fmt.Fprintf(env.errOut(), "%s: %v\nRun 'certkeeper help%s' for usage.\n", where, err, prefixSpace(gerr.Group))
		return exitUsage
	}
	switch {
	case help:
		printHelp(env.Stdout, cmd, env.dnsProviders)
		return exitOK
	case missing:
		printHelp(env.Stderr, cmd, env.dnsProviders)
		return exitUsage
	}
	fs := cmd.FlagSet(globalFlags)
	logFormat, logLevel := fs.Lookup("log-format").Value, fs.Lookup("log-level").Value
	// Deprecation notes wait for the logging setup: with --log-format
	// json they are JSON lines too.
	var notes bytes.Buffer
	cmdArgs, err := cmdline.Parse(fs, words, cmd.RawArgs, &notes)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(env.Stdout, cmd, env.dnsProviders)
		return exitOK
	} else if err == nil {
		env.fromEnv, err = cmdline.FromEnv(fs, envPrefix, os.LookupEnv, childEnv())
	}
	if err != nil {
		if logsetup.JSONAsked(words, os.Getenv(envPrefix+"LOG_FORMAT")) {
			_ = env.setLogging("json", "")
		}
		env.Stderr.Write(notes.Bytes())
		return env.usage(cmd, err)
	}
	env.human = !cmd.Serves
	if err := env.setLogging(logFormat.String(), logLevel.String()); err != nil {
		env.Stderr.Write(notes.Bytes())
		fmt.Fprintf(env.Stderr, "certkeeper %s: %v\n", cmd.FullName(), err)
		return exitUsage
	}
	if q := fs.Lookup("quiet"); q == nil || q.Value.String() != "true" { // cert renew --quiet, from cron
		env.Stderr.Write(notes.Bytes())
	}
	if err := cmd.CheckArgs(cmdArgs); err != nil {
		return env.usage(cmd, err)
	}
	if err := cmd.Run(ctx, env, cmdArgs); err != nil {
		if ierr, ok := errors.AsType[interruptedError](context.Cause(ctx)); ok {
			if errors.Is(err, context.Canceled) {
				err = errors.New("interrupted")
			} else {
				err = fmt.Errorf("interrupted: %w", err)
			}
			fmt.Fprintf(env.errOut(), "certkeeper %s: %v\n", cmd.FullName(), err)
			return 128 + int(ierr.sig)
		}
		if code, ok := errors.AsType[exitStatus](err); ok {
			return int(code)
		}
		if !errors.As(err, new(*cmdline.AttributedError)) { // a front-end's config file attribution names the variables too
			err = cmdline.Attribute(err, env.flagSource)
		}
		err = withFlagHints(err) // library errors name fields, not flags (hints.go)
		var uerr *usageError
		if errors.As(err, &uerr) {
			return env.usage(cmd, err)
		}
		fmt.Fprintf(env.errOut(), "certkeeper %s: %v\n", cmd.FullName(), err)
		return exitFailure
	}
	return exitOK
}

// envPrefix starts the environment variables that give flags:
// CERTKEEPER_ALLOW is --allow (cmdline.FromEnv).
const envPrefix = "CERTKEEPER_"

// childEnv are the variables certkeeper sets for the commands it runs
// (hooks, alert and DNS commands, an upgrade's new process), which must
// not set the flags of a certkeeper command those run: a deploy hook's
// CERTKEEPER_CERT_FILE is not --cert-file.
func childEnv() []string {
	return []string{"CERTKEEPER_NAME", "CERTKEEPER_NAMES", "CERTKEEPER_CERT_FILE", "CERTKEEPER_KEY_FILE", "CERTKEEPER_NOT_AFTER",
		"CERTKEEPER_DEPLOY_DIR", "CERTKEEPER_ALERT_JSON", "CERTKEEPER_ALERT_MESSAGE", "CERTKEEPER_ALERT_REASON", "CERTKEEPER_ACTION",
		"CERTKEEPER_ZONE", "CERTKEEPER_FQDN", "CERTKEEPER_VALUE", "CERTKEEPER_LISTEN_FDS", "CERTKEEPER_READY_FD"}
}

// flagSource says where a flag ("--allow") came from for
// cmdline.Attribute: its environment variable, or the flag itself.
func (env *Env) flagSource(flag string) string {
	if v, ok := env.fromEnv[strings.TrimPrefix(flag, "--")]; ok {
		return "$" + v
	}
	return flag
}

// usage prints err, the bad usage of cmd, with a pointer to its --help,
// and returns exitUsage.
func (env *Env) usage(cmd *Command, err error) int {
	fmt.Fprintf(env.errOut(), "certkeeper %s: %v\nRun 'certkeeper %s --help' for usage.\n", cmd.FullName(), err, cmd.FullName())
	return exitUsage
}

// errOut is where the error that ends a command goes: stderr, at Error
// under JSON logs.
func (env *Env) errOut() io.Writer {
	if l, ok := env.Stderr.(*logsetup.Lines); ok {
		return l.Errors()
	}
	return env.Stderr
}

func prefixSpace(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}

// printHelp writes a command's help (cmdline's PrintHelp, with the flags
// by flagGroups), and for a command with --dns the providers compiled in
// (dns).
func printHelp(w io.Writer, c *Command, dns []dnsprovider.Provider) {
	fs := c.FlagSet(globalFlags)
	c.PrintHelp(w, fs, flagGroups)
	if len(c.Commands) == 0 && fs.Lookup("dns") != nil {
		printDNSProviders(w, dns)
	}
}

// newLogger builds the slog logger the flags ask for (logsetup.New); no
// level is warn, the default but for proxy and server (serviceLogLevel).
func newLogger(w io.Writer, format, level string, human bool) (*slog.Logger, error) {
	logger, err := logsetup.New(w, format, cmp.Or(level, "warn"))
	if human && err == nil && format == "text" {
		logger, err = logsetup.NewHuman(w, cmp.Or(level, "warn"))
	}
	switch {
	case errors.Is(err, logsetup.ErrLevel):
		return nil, usagef("--log-level %q: use debug, info, warn or error", level)
	case errors.Is(err, logsetup.ErrFormat):
		return nil, usagef("--log-format %q: use text or json", format)
	}
	return logger, err
}

// globalFlags are the flags every command takes.
func globalFlags(fs *flag.FlagSet) {
	fs.String("log-format", "text", "log `FORMAT`: text, or json for log collectors")
	fs.String("log-level", "", "log `LEVEL`: debug, info, warn or error (default: info for proxy and server, warn for the other commands)")
}
