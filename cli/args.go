package cli

import "github.com/certkeeper/certkeeper/internal/cmdline"

// The command line is parsed by package internal/cmdline rather than by
// flag.FlagSet.Parse, which stops at the first argument: flags may follow
// arguments and come before a subcommand's name ("alpn-proxy --fallback
// ADDR start" gives --fallback to start; TestFlagKindsAgree checks that a
// flag name is boolean in every command of a group or in none, so that
// such a flag's value is known). This file joins that machinery to the
// command table.

// Command is one command or command group, in the shape of cmd/go's
// Command: a usage line, a short and a long description that teaches by
// example, its own flag set, and Run. Run returns a usageError for bad
// usage (exit 2), any other error for failure (exit 1).
type Command = cmdline.Command[*Env]
