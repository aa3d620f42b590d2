package acmeca

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/mholt/acmez/v3/acme"
)

// ErrInvalidEmail is CheckEmail's error (wrapped): the email cannot be an
// account's mailto: contact.
var ErrInvalidEmail = errors.New("not an email address")

// CheckEmail returns nil for "" (no contact) and for an address such as
// you@a.example, and an error wrapping ErrInvalidEmail for anything else
// (a missing @, a display name, a mailto: prefix): what a CA would refuse
// as an invalid contact only after the account key was made and sent.
// It checks the syntax alone; a CA may still refuse a domain it will not
// mail (example.com at Let's Encrypt).
func CheckEmail(email string) error {
	if email == "" {
		return nil
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != email || strings.ContainsAny(email, " ,;<>") {
		return fmt.Errorf("%q: %w: want one such as you@a.example (no name, no mailto:)", email, ErrInvalidEmail)
	}
	return nil
}

// Register returns the account, registering it at the CA if storage has
// none (one storage holds is fetched from the CA: its status there, which
// another client may have changed), and makes contacts its contacts when
// there is more than one (one is Email, which Account registers with). tos is the terms-of-service
// URL AgreeTerms was shown, "" if it was not called: what the caller
// accepted, or, when AgreeTerms refused, what the user has to read.
func (iss *Issuer) Register(ctx context.Context, contacts []string) (acct acme.Account, tos string, err error) {
	agree := iss.AgreeTerms
	iss.AgreeTerms = func(url string) bool {
		tos = url
		return agree == nil || agree(url)
	}
	defer func() { iss.AgreeTerms = agree }()
	acct, err = iss.Account(ctx)
	if err != nil {
		return acme.Account{}, tos, err
	}
	if tos == "" { // stored already: its status is the CA's, not the record's (deactivated elsewhere, say)
		if acct, err = iss.AccountStatus(ctx); err != nil {
			return acme.Account{}, tos, err
		}
	}
	if len(contacts) > 1 {
		if acct, err = iss.UpdateContacts(ctx, contacts); err != nil {
			return acme.Account{}, tos, err
		}
	}
	return acct, tos, nil
}

// WriteAccount writes acct's URL, status, contacts and, if its key is
// known, the key's thumbprint and type, one per line, as the command's
// account commands print them.
func WriteAccount(w io.Writer, acct acme.Account) {
	fmt.Fprintf(w, "url:        %s\n", acct.Location)
	fmt.Fprintf(w, "status:     %s\n", acct.Status)
	fmt.Fprintf(w, "contacts:   %s\n", strings.Join(acct.Contact, ", "))
	if acct.PrivateKey != nil {
		if tp, err := acct.Thumbprint(); err == nil {
			fmt.Fprintf(w, "thumbprint: %s\n", tp)
		}
		fmt.Fprintf(w, "key type:   %s\n", issuer.KeyTypeOf(acct.PrivateKey.Public()))
	}
}
