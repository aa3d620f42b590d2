package cli

import (
	"bufio"
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/redact"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/mholt/acmez/v3/acme"
)

// accountFlags are the flags every account command takes: which account.
type accountFlags struct {
	caFlags
	emails  cmdline.Strings
	storage storageFlags
}

func (a *accountFlags) register(fs *flag.FlagSet) {
	a.caFlags.register(fs, caEAB)
	fs.Var(&a.emails, "email", "the account's contact `EMAIL`; the first one names the account in --storage\n(repeatable for register and update)")
	cmdline.Bind(fs, &a.storage)
}

func (a *accountFlags) issuer(env *Env, agree func(string) bool) (*acmeca.Issuer, error) {
	if a.local() {
		return nil, usagef("--ca local: the local CA signs without ACME and has no accounts; the account commands are for ACME CAs (--ca letsencrypt or a directory URL)")
	}
	for _, e := range a.emails {
		if err := acmeca.CheckEmail(e); err != nil {
			return nil, usagef("--email %v", err)
		}
	}
	st, _, err := a.storage.open(context.Background(), env)
	if err != nil {
		return nil, err
	}
	iss, err := a.acmeIssuer(env, a.ca(), st)
	if err != nil {
		return nil, err
	}
	iss.AgreeTerms = agree
	if len(a.emails) > 0 {
		iss.Email = a.emails[0]
	}
	return iss, nil
}

// stored is the issuer of an account that must exist already: its key
// is in --storage. Without one, nothing is asked of the CA (it could
// only offer to register a new account).
func (a *accountFlags) stored(ctx context.Context, env *Env) (*acmeca.Issuer, error) {
	iss, err := a.issuer(env, refuseTerms)
	if err != nil {
		return nil, err
	}
	if has, err := iss.HasAccount(ctx); err != nil {
		return nil, err
	} else if !has {
		if others := iss.OtherAccounts(ctx); len(others) > 0 {
			hint := "leave out --email"
			if emails := slices.DeleteFunc(slices.Clone(others), func(e string) bool { return !strings.Contains(e, "@") }); len(emails) == 1 {
				hint = "give --email " + emails[0]
			} else if len(emails) > 1 {
				hint = "give --email with one of them"
			}
			return nil, fmt.Errorf("no account for %s%s is stored in %s, which holds %s there: %s; %s",
				redact.URL(engine.CAURL(a.ca())), emailNote(iss.Email), a.storage.where(), cmdline.Plural(len(others), "account"), strings.Join(others, ", "), hint)
		}
		return nil, fmt.Errorf("no account for %s%s is stored in %s: register one with certkeeper account register, "+
			"or give the --email (and --ca, --storage) it was registered with", redact.URL(engine.CAURL(a.ca())), emailNote(iss.Email), a.storage.where())
	}
	return iss, nil
}

// emailNote is " with email E", or "" for the account without one.
func emailNote(email string) string {
	if email == "" {
		return " (without --email)"
	}
	return " with email " + email
}

// confirm asks question on stderr and reports whether the answer read from
// stdin is yes.
func confirm(env *Env, question string) bool {
	fmt.Fprint(env.Stderr, question)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}

// refuseTerms is the terms prompt of commands that must not register.
func refuseTerms(string) bool { return false }

// show runs op on the account's issuer, which must not register, and
// prints the account op returns.
func (a *accountFlags) show(ctx context.Context, env *Env, op func(*acmeca.Issuer, context.Context) (acme.Account, error)) error {
	iss, err := a.stored(ctx, env)
	if err != nil {
		return err
	}
	acct, err := op(iss, ctx)
	if err != nil {
		return err
	}
	acmeca.WriteAccount(env.Stdout, acct)
	return nil
}

func accountCmd() *Command {
	return &Command{
		UsageLine: "certkeeper account COMMAND [flags]",
		Short:     "manage ACME accounts",
		Commands: []*Command{
			accountRegisterCmd(), accountShowCmd(), accountUpdateCmd(),
			accountRolloverCmd(), accountDeactivateCmd(), accountRecoverCmd(),
		},
	}
}

func accountRegisterCmd() *Command {
	a := &accountFlags{}
	var agree bool
	return &Command{
		UsageLine: "certkeeper account register --email EMAIL --agree-tos [flags]",
		Short:     "register an account (showing the CA's terms)",
		Flags: func(fs *flag.FlagSet) {
			a.register(fs)
			fs.BoolVar(&agree, "agree-tos", false, "accept the CA's terms of service (shown by running without it)")
		},
		Spellings: otherTools,
		Run: func(ctx context.Context, env *Env, args []string) error {
			iss, err := a.issuer(env, func(string) bool { return agree })
			if err != nil {
				return err
			}
			acct, shown, err := iss.Register(ctx, a.emails)
			if err != nil {
				if !agree && shown != "" {
					return fmt.Errorf("read the CA's terms of service at %s, then run again with --agree-tos", shown)
				}
				return err
			}
			if shown != "" {
				fmt.Fprintf(env.Stderr, "certkeeper: terms of service accepted: %s\n", shown)
			}
			acmeca.WriteAccount(env.Stdout, acct)
			return nil
		},
	}
}

func accountShowCmd() *Command {
	a := &accountFlags{}
	return &Command{
		UsageLine:  "certkeeper account show [flags]",
		OtherNames: []string{"show_account (certbot)"},
		Short:      "show an account's URL, status, contacts and key thumbprint",
		Flags:      a.register,
		Run: func(ctx context.Context, env *Env, args []string) error {
			return a.show(ctx, env, (*acmeca.Issuer).AccountStatus)
		},
	}
}

func accountUpdateCmd() *Command {
	a := &accountFlags{}
	var contacts cmdline.Strings
	return &Command{
		UsageLine:  "certkeeper account update --email EMAIL --contact EMAIL... [flags]",
		OtherNames: []string{"update_account (certbot)"},
		Short:      "replace an account's contacts",
		Flags: func(fs *flag.FlagSet) {
			a.register(fs)
			fs.Var(&contacts, "contact", "a contact `EMAIL` (repeatable): the new list")
		},
		Spellings: append([]cmdline.Spelling{{Tool: "certbot", Name: "m", To: "contact"}}, otherTools...), // update_account -m NEW
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(contacts) == 0 {
				return usagef("give the new contacts with --contact")
			}
			return a.show(ctx, env, func(iss *acmeca.Issuer, ctx context.Context) (acme.Account, error) {
				return iss.UpdateContacts(ctx, contacts)
			})
		},
	}
}

func accountRolloverCmd() *Command {
	a := &accountFlags{}
	var keyType string
	return &Command{
		UsageLine: "certkeeper account rollover [flags]",
		Short:     "replace the account's key (the old one stops working)",
		Flags: func(fs *flag.FlagSet) {
			a.register(fs)
			fs.StringVar(&keyType, "key-type", string(issuer.ECDSAP256), "the new key's `TYPE`")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			kt, err := issuer.ParseKeyType(keyType)
			if err != nil {
				return usagef("--key-type: %v", err)
			}
			return a.show(ctx, env, func(iss *acmeca.Issuer, ctx context.Context) (acme.Account, error) {
				return iss.RolloverKey(ctx, kt)
			})
		},
	}
}

func accountDeactivateCmd() *Command {
	a := &accountFlags{}
	var yes bool
	return &Command{
		UsageLine:  "certkeeper account deactivate [--yes] [flags]",
		OtherNames: []string{"unregister (certbot)"},
		Short:      "deactivate an account for good",
		Flags: func(fs *flag.FlagSet) {
			a.register(fs)
			fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
		},
		Spellings: otherTools,
		Run: func(ctx context.Context, env *Env, args []string) error {
			iss, err := a.stored(ctx, env)
			if err != nil {
				return err
			}
			if !yes {
				if !confirm(env, fmt.Sprintf("Deactivate the account of %s at %s for good? Type yes: ", cmp.Or(strings.Join(a.emails, ","), "no email"), redact.URL(engine.CAURL(a.ca())))) {
					return fmt.Errorf("not deactivated")
				}
			}
			if err := iss.Deactivate(ctx); err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout, "deactivated")
			return nil
		},
	}
}

func accountRecoverCmd() *Command {
	a := &accountFlags{}
	return &Command{
		UsageLine: "certkeeper account recover [flags]",
		Short:     "find the account again from its key alone",
		Flags:     a.register,
		Run: func(ctx context.Context, env *Env, args []string) error {
			return a.show(ctx, env, (*acmeca.Issuer).Recover)
		},
	}
}
