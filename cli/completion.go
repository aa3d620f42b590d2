package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/certkeeper/certkeeper/certdeploy"
	"github.com/certkeeper/certkeeper/dnsprovider"
	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer"
)

func completionCmd() *Command {
	var words bool
	return &Command{
		UsageLine: "certkeeper completion SHELL",
		Short:     "print the shell completion script",
		Flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&words, "words", false, "print the completions of the words after -- (what the scripts run)")
		},
		RawArgs:   true,
		ArgsHint:  "give the shell: certkeeper completion bash",
		ArgValues: cmdline.Shells,
		Run: func(_ context.Context, env *Env, args []string) error {
			if words {
				for _, c := range cmdline.Complete(root(), args, globalFlags, completionValues(env)) {
					fmt.Fprintln(env.Stdout, c)
				}
				return nil
			}
			if len(args) != 1 {
				return usagef("give one shell: %s", strings.Join(cmdline.Shells, ", "))
			}
			script, err := cmdline.CompletionScript(args[0], "certkeeper")
			if err != nil {
				return usagef("%v", err)
			}
			fmt.Fprint(env.Stdout, script)
			return nil
		},
	}
}

// completionValues are the values completed for the flags that take one
// of a few.
func completionValues(env *Env) map[string][]string {
	var keyTypes, dns []string
	for _, k := range issuer.KeyTypes {
		keyTypes = append(keyTypes, string(k))
	}
	for _, p := range append(dnsprovider.Builtin(), env.dnsProviders...) {
		dns = append(dns, p.Name)
	}
	return map[string][]string{"challenge": engine.Challenges, "key-type": keyTypes, "ca": engine.CANames[:3], "dns": dns,
		"log-level": {"debug", "info", "warn", "error"}, "log-format": {"text", "json"}, "format": certdeploy.Formats(),
		"profile": {"classic", "tlsserver", "shortlived"}}
}
