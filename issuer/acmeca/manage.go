package acmeca

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/mholt/acmez/v3/acme"
)

// ErrAccountDeactivated is returned for an account certkeeper deactivated:
// the CA refuses it for good.
var ErrAccountDeactivated = errors.New("the ACME account is deactivated")

// ErrUnreachable is wrapped by the error of an Issuer that cannot fetch
// the CA's directory: a wrong DirectoryURL, the network, or an HTTPS
// certificate HTTPClient does not trust.
var ErrUnreachable = errors.New("cannot reach the ACME CA")

// ErrCANotTrusted is wrapped, beside ErrUnreachable, by the error of an
// Issuer whose CA answered with an HTTPS certificate that HTTPClient does
// not trust (a private or test CA: give HTTPClient its root). Without it,
// an unreachable CA is down or out of the network's reach, and no root
// helps.
var ErrCANotTrusted = errors.New("the CA's HTTPS certificate is not trusted")

// ErrAccountKeyDamaged is wrapped by the error of an Issuer whose stored
// account key cannot be parsed. The key is the account: nothing can find
// it again. Restore the key from a backup, or remove it and its account
// record so that a new account is registered.
var ErrAccountKeyDamaged = errors.New("the stored ACME account key is damaged")

// ErrEABRequired is wrapped by the error of an Issuer without EAB when the
// CA requires external account binding.
var ErrEABRequired = errors.New("requires external account binding")

// ErrNoChallenge is wrapped by the error of an authorization none of whose
// challenges the Issuer can answer (ChallengeOrder and Solvers).
var ErrNoChallenge = errors.New("no challenge the CA offers can be answered")

// AccountStatus fetches the account's current state from the CA (URL,
// status, contacts), registering it first if there is none.
func (iss *Issuer) AccountStatus(ctx context.Context) (acme.Account, error) {
	acct, client, err := iss.accountAndClient(ctx)
	if err != nil {
		return acme.Account{}, err
	}
	var got acme.Account
	err = iss.do(ctx, "fetching account", func(ctx context.Context) error {
		var err error
		got, err = client.GetAccount(ctx, acme.Account{PrivateKey: acct.PrivateKey})
		return err
	})
	if err != nil {
		return acme.Account{}, fmt.Errorf("fetching account %s: %w", acct.Location, err)
	}
	got.PrivateKey = acct.PrivateKey
	if got.Location == "" {
		got.Location = acct.Location
	}
	return got, nil
}

// UpdateContacts replaces the account's contacts with mailto: URLs of
// emails (RFC 8555 §7.3.2).
func (iss *Issuer) UpdateContacts(ctx context.Context, emails []string) (acme.Account, error) {
	for _, e := range emails {
		if err := CheckEmail(e); err != nil {
			return acme.Account{}, fmt.Errorf("updating contacts: email %w", err)
		}
	}
	acct, client, err := iss.accountAndClient(ctx)
	if err != nil {
		return acme.Account{}, err
	}
	contacts := make([]string, len(emails))
	for i, e := range emails {
		contacts[i] = "mailto:" + e
	}
	upd := acme.Account{Location: acct.Location, PrivateKey: acct.PrivateKey, Contact: contacts}
	var got acme.Account
	err = iss.do(ctx, "updating account", func(ctx context.Context) error {
		var err error
		got, err = client.UpdateAccount(ctx, upd)
		return err
	})
	if err != nil {
		return acme.Account{}, fmt.Errorf("updating contacts of %s: %w", acct.Location, err)
	}
	got.Location, got.PrivateKey = acct.Location, acct.PrivateKey
	if err := iss.saveRecord(ctx, got, ""); err != nil {
		return acme.Account{}, err
	}
	iss.setAccount(got)
	return got, nil
}

// RolloverKey replaces the account's key with a new one of type kt (RFC
// 8555 §7.3.5): afterwards the CA refuses the old key. The new key is
// stored as the account's key only once the CA has accepted it; the old
// one is kept beside it (EMAIL.key.old) for the operator.
func (iss *Issuer) RolloverKey(ctx context.Context, kt issuer.KeyType) (acme.Account, error) {
	acct, client, err := iss.accountAndClient(ctx)
	if err != nil {
		return acme.Account{}, err
	}
	newKey, err := kt.Generate()
	if err != nil {
		return acme.Account{}, fmt.Errorf("generating the new account key: %w", err)
	}
	newPEM, err := storage.MarshalPrivateKeyPEM(newKey)
	if err != nil {
		return acme.Account{}, err
	}
	oldPEM, err := storage.MarshalPrivateKeyPEM(acct.PrivateKey)
	if err != nil {
		return acme.Account{}, err
	}
	_, privKey, err := iss.accountKeys()
	if err != nil {
		return acme.Account{}, err
	}
	// Kept first: if the process dies after the CA switched keys, the new
	// key is here to recover the account with.
	if err := iss.Storage.Store(ctx, privKey+".next", newPEM); err != nil {
		return acme.Account{}, fmt.Errorf("storing the new account key: %w", err)
	}
	err = iss.do(ctx, "rolling over account key", func(ctx context.Context) error {
		_, err := client.AccountKeyRollover(ctx, acct, newKey)
		return err
	})
	if err != nil {
		// The request may have reached the CA and its reply been lost
		// (acmez's repeat of it is then refused): ask the CA which key it
		// holds before throwing the new one away.
		switched, lerr := iss.rolledOver(ctx, client, acct, newKey)
		switch {
		case switched:
			iss.logger().Info("the CA took the new account key although the rollover request failed (its reply was lost)",
				slog.String("issuer", iss.ID()), slog.String("account", acct.Location), slog.Any("err", err))
		case lerr == nil:
			_ = iss.Storage.Delete(ctx, privKey+".next")
			return acme.Account{}, fmt.Errorf("rolling over the key of %s: %w", acct.Location, err)
		default:
			iss.acctMu.Lock()
			iss.acct = nil // loaded again, with the rollover finished, at the next use
			iss.acctMu.Unlock()
			return acme.Account{}, fmt.Errorf("rolling over the key of %s: %w (whether the CA took the new key is unknown: "+
				"it is kept in %s.next, and the next use of the account finishes the rollover)", acct.Location, err, privKey)
		}
	}
	if err := iss.promoteKey(ctx, privKey, oldPEM, newPEM); err != nil {
		return acme.Account{}, err
	}
	acct.PrivateKey = newKey
	iss.setAccount(acct)
	iss.logger().Info("ACME account key rolled over", slog.String("issuer", iss.ID()), slog.String("account", acct.Location))
	return acct, nil
}

// promoteKey stores newPEM as the account key privKey once the CA uses
// it, keeping oldPEM beside it (.old), and drops the rollover's .next.
func (iss *Issuer) promoteKey(ctx context.Context, privKey string, oldPEM, newPEM []byte) error {
	if err := iss.Storage.Store(ctx, privKey+".old", oldPEM); err != nil {
		iss.logger().Warn("keeping the old account key", slog.Any("err", err))
	}
	if err := iss.Storage.Store(ctx, privKey, newPEM); err != nil {
		return fmt.Errorf("the CA switched to the new key, but storing it failed (it is in %s.next): %w", privKey, err)
	}
	_ = iss.Storage.Delete(ctx, privKey+".next")
	return nil
}

// rolledOver asks the CA whether it knows acct by newKey, the question a
// key rollover that failed or was cut short leaves open, since its request
// may have reached the CA: true if the CA answers with acct's URL, false
// if it knows no account by newKey, an error if it could not tell.
func (iss *Issuer) rolledOver(ctx context.Context, client *acme.Client, acct acme.Account, newKey crypto.Signer) (bool, error) {
	var found acme.Account
	err := iss.do(ctx, "looking up the account by its new key", func(ctx context.Context) error {
		var err error
		found, err = client.GetAccount(ctx, acme.Account{PrivateKey: newKey})
		return err
	})
	switch {
	case err == nil:
		return found.Location == acct.Location, nil
	case isProblem(err, acme.ProblemTypeAccountDoesNotExist):
		return false, nil
	}
	return false, err
}

// finishRollover settles a key rollover a process did not see the end of
// (its .next key is still stored): if the CA took the new key, it becomes
// the account's key; if not, it is dropped. If the CA cannot tell, acct is
// returned as it is, and the next load asks again.
func (iss *Issuer) finishRollover(ctx context.Context, acct acme.Account) acme.Account {
	_, privKey, err := iss.accountKeys()
	if err != nil {
		return acct
	}
	newPEM, err := iss.Storage.Load(ctx, privKey+".next")
	if err != nil {
		return acct
	}
	newKey, err := storage.ParsePrivateKeyPEM(newPEM)
	if err != nil {
		return acct
	}
	client, err := iss.client(ctx)
	if err != nil {
		return acct
	}
	switched, err := iss.rolledOver(ctx, client, acct, newKey)
	switch {
	case err != nil:
		return acct
	case !switched:
		_ = iss.Storage.Delete(ctx, privKey+".next")
		return acct
	}
	oldPEM, err := storage.MarshalPrivateKeyPEM(acct.PrivateKey)
	if err != nil || iss.promoteKey(ctx, privKey, oldPEM, newPEM) != nil {
		acct.PrivateKey = newKey // the CA's key, for this process at least
		return acct
	}
	iss.logger().Info("finished an account key rollover cut short: the CA had taken the new key",
		slog.String("issuer", iss.ID()), slog.String("account", acct.Location))
	acct.PrivateKey = newKey
	return acct
}

// Deactivate deactivates the account at the CA (RFC 8555 §7.3.6): it can
// no longer order, and this cannot be undone. The stored record is marked
// so certkeeper says so instead of trying to use it.
func (iss *Issuer) Deactivate(ctx context.Context) error {
	acct, client, err := iss.accountAndClient(ctx)
	if err != nil {
		return err
	}
	upd := acme.Account{Location: acct.Location, PrivateKey: acct.PrivateKey, Status: acme.StatusDeactivated}
	err = iss.do(ctx, "deactivating account", func(ctx context.Context) error {
		_, err := client.UpdateAccount(ctx, upd)
		return err
	})
	if isProblem(err, acme.ProblemTypeUnauthorized) {
		// The CA refuses the account's key, as it does once the account
		// is deactivated (RFC 8555 §7.3.6): an earlier request got
		// through and its reply was lost, or a run whose record was not
		// marked. Either way it is deactivated: mark it.
		iss.logger().Info("the CA refuses the account's key: it is deactivated already",
			slog.String("issuer", iss.ID()), slog.String("account", acct.Location), slog.Any("err", err))
		err = nil
	}
	if err != nil {
		return fmt.Errorf("deactivating %s: %w", acct.Location, err)
	}
	acct.Status = acme.StatusDeactivated
	if err := iss.saveRecord(ctx, acct, acme.StatusDeactivated); err != nil {
		return err
	}
	iss.acctMu.Lock()
	iss.acct = nil
	iss.acctMu.Unlock()
	iss.logger().Info("ACME account deactivated", slog.String("issuer", iss.ID()), slog.String("account", acct.Location))
	return nil
}

// Recover forgets the stored account record and finds the account again
// from its key alone (onlyReturnExisting, RFC 8555 §7.3.1).
func (iss *Issuer) Recover(ctx context.Context) (acme.Account, error) {
	recordKey, _, err := iss.accountKeys()
	if err != nil {
		return acme.Account{}, err
	}
	if err := iss.Storage.Delete(ctx, recordKey); err != nil {
		return acme.Account{}, fmt.Errorf("removing the account record: %w", err)
	}
	iss.acctMu.Lock()
	iss.acct = nil
	iss.acctMu.Unlock()
	return iss.Account(ctx)
}

// accountAndClient returns the account (registering it if needed) and the
// client to act on it with.
func (iss *Issuer) accountAndClient(ctx context.Context) (acme.Account, *acme.Client, error) {
	acct, err := iss.Account(ctx)
	if err != nil {
		return acme.Account{}, nil, err
	}
	client, err := iss.client(ctx)
	if err != nil {
		return acme.Account{}, nil, err
	}
	return acct, client, nil
}

func (iss *Issuer) setAccount(a acme.Account) {
	iss.acctMu.Lock()
	iss.acct = &a
	iss.acctMu.Unlock()
}

// saveRecord stores the account record for acct with status.
func (iss *Issuer) saveRecord(ctx context.Context, acct acme.Account, status string) error {
	recordKey, _, err := iss.accountKeys()
	if err != nil {
		return err
	}
	rec, err := json.MarshalIndent(accountRecord{
		Location: acct.Location, Contact: acct.Contact, Directory: iss.directory(),
		Created: time.Now().UTC(), Status: status,
	}, "", "\t")
	if err != nil {
		return err
	}
	if err := iss.Storage.Store(ctx, recordKey, rec); err != nil {
		return fmt.Errorf("storing account record: %w", err)
	}
	return nil
}
