package acmeca

import (
	"cmp"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/mholt/acmez/v3/acme"
)

// accountRecord is what is stored under storage.AccountKey; the private key
// lives apart, under storage.AccountPrivateKey.
type accountRecord struct {
	// Location is the account URL.
	Location string `json:"location"`
	// Contact is what the account was registered with.
	Contact []string `json:"contact,omitempty"`
	// Directory is the CA's directory URL, for operators reading storage.
	Directory string `json:"directory"`
	// Created is when certkeeper registered or found the account.
	Created time.Time `json:"created"`
	// Status is "deactivated" once certkeeper deactivated it; empty
	// otherwise.
	Status string `json:"status,omitempty"`
}

// Account returns the ACME account this issuer orders with, registering it
// at the CA on first use. The account key is stored before registration,
// so a lost account record is found again from the key (onlyReturnExisting,
// RFC 8555 §7.3.1) rather than registered anew.
func (iss *Issuer) Account(ctx context.Context) (acme.Account, error) {
	iss.acctMu.Lock()
	defer iss.acctMu.Unlock()
	if iss.acct != nil {
		if time.Since(iss.acctChecked) < cmp.Or(iss.recheckEvery, accountRecheck) {
			return *iss.acct, nil
		}
		return iss.recheck(ctx), nil
	}
	iss.adoptSole(ctx)
	acct, err := iss.loadAccount(ctx)
	if err == nil {
		acct = iss.finishRollover(ctx, acct)
	}
	if errors.Is(err, errRecordDamaged) {
		iss.logger().Warn("the stored ACME account record is damaged; finding the account again from its key",
			slog.String("issuer", iss.ID()), slog.Any("err", err))
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errRecordDamaged) {
		acct, err = iss.lockedRegister(ctx, false)
	}
	if err != nil {
		return acme.Account{}, err
	}
	iss.acct, iss.acctChecked = &acct, time.Now()
	return acct, nil
}

// accountRecheck is how often, at most, the account in use is compared
// with storage (recheck).
const accountRecheck = time.Minute

// recheck compares the account in use with storage, at most once per
// accountRecheck, with acctMu held. A storage that lost it (a Redis
// without persistence, restarted) gets it back, so a node that starts
// then finds it rather than registering another; an account another
// process stored meanwhile (registered when it found none, or its key
// rolled over) is adopted. Either way every node sharing the storage
// orders from one account, which the CA needs for a renewal's replaces
// (a trial's cluster split across two after Redis lost its data). A
// storage that cannot be read keeps the account in use.
func (iss *Issuer) recheck(ctx context.Context) acme.Account {
	iss.acctChecked = time.Now()
	own := *iss.acct
	stored, err := iss.loadAccount(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		stored, err = iss.restoreAccount(ctx, own)
	}
	if err != nil {
		iss.logger().Debug("comparing the ACME account with storage", slog.String("issuer", iss.ID()), slog.Any("err", err))
		return own
	}
	if stored.Location != own.Location || !samePublicKey(stored.PrivateKey, own.PrivateKey) {
		iss.logger().Warn("storage holds another ACME account for this CA than the one in use (another process registered it, or rolled its key over); ordering from it",
			slog.String("issuer", iss.ID()), slog.String("was", own.Location), slog.String("account", stored.Location))
		iss.acct = &stored
	}
	return *iss.acct
}

// restoreAccount stores acct, the account in use, whose key or record
// storage no longer holds, under the account lock, unless another process
// stored one meanwhile (returned, for recheck to adopt).
func (iss *Issuer) restoreAccount(ctx context.Context, acct acme.Account) (acme.Account, error) {
	unlock, err := iss.Storage.Lock(ctx, storage.AccountLock(iss.ID()))
	if err != nil {
		return acme.Account{}, fmt.Errorf("locking account of %s: %w", iss.ID(), err)
	}
	defer unlock()
	if stored, err := iss.loadAccount(ctx); !errors.Is(err, fs.ErrNotExist) {
		return stored, err
	}
	recordKey, privKey, err := iss.accountKeys()
	if err != nil {
		return acme.Account{}, err
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(acct.PrivateKey)
	if err != nil {
		return acme.Account{}, err
	}
	rec, err := json.MarshalIndent(accountRecord{Location: acct.Location, Contact: acct.Contact, Directory: iss.directory(), Created: time.Now().UTC()}, "", "\t")
	if err != nil {
		return acme.Account{}, err
	}
	if err := iss.Storage.Store(ctx, privKey, keyPEM); err != nil {
		return acme.Account{}, fmt.Errorf("storing account key: %w", err)
	}
	if err := iss.Storage.Store(ctx, recordKey, rec); err != nil {
		return acme.Account{}, fmt.Errorf("storing account record: %w", err)
	}
	iss.logger().Warn("the ACME account in use was missing from storage (did the storage lose its data?); stored it again",
		slog.String("issuer", iss.ID()), slog.String("account", acct.Location))
	return acct, nil
}

// samePublicKey reports whether a and b are keys of one public key.
func samePublicKey(a, b crypto.Signer) bool {
	if a == nil || b == nil {
		return a == b
	}
	pa, ok := a.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(b.Public())
}

// HasAccount reports whether the account's key is in Storage: whether
// there is an account to act on (or to recover from its key) without
// registering a new one. It asks the CA nothing.
func (iss *Issuer) HasAccount(ctx context.Context) (bool, error) {
	_, privKey, err := iss.accountKeys()
	if err != nil {
		return false, err
	}
	_, err = iss.Storage.Load(ctx, privKey)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the account key %s: %w", privKey, err)
	}
	return true, nil
}

// reregister replaces an account the CA no longer knows (its state was
// lost, or the account was deactivated elsewhere): the stored record is
// dropped and the account is registered again with the same key.
func (iss *Issuer) reregister(ctx context.Context, stale acme.Account) (acme.Account, error) {
	iss.acctMu.Lock()
	defer iss.acctMu.Unlock()
	if iss.acct != nil && iss.acct.Location != stale.Location {
		return *iss.acct, nil // another goroutine did it already
	}
	iss.logger().Warn("the CA does not know the stored account; registering again",
		slog.String("issuer", iss.ID()), slog.String("account", stale.Location))
	acct, err := iss.lockedRegister(ctx, true)
	if err != nil {
		return acme.Account{}, err
	}
	iss.acct, iss.acctChecked = &acct, time.Now()
	return acct, nil
}

// lockedRegister registers (or recovers) the account under the storage
// lock, so processes sharing storage register once.
func (iss *Issuer) lockedRegister(ctx context.Context, force bool) (acme.Account, error) {
	unlock, err := iss.Storage.Lock(ctx, storage.AccountLock(iss.ID()))
	if err != nil {
		return acme.Account{}, fmt.Errorf("locking account of %s: %w", iss.ID(), err)
	}
	defer unlock()
	if !force {
		if acct, err := iss.loadAccount(ctx); err == nil {
			return acct, nil // another process registered it while we waited
		} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errRecordDamaged) {
			return acme.Account{}, err
		}
	}
	return iss.register(ctx, force)
}

// ownEmail is the email the issuer's own account is stored under: Email,
// or the only stored account's, adopted by an issuer without one.
func (iss *Issuer) ownEmail() string {
	if sole := iss.sole.Load(); sole != nil && iss.Email == "" {
		return storage.AccountEmail(sole[0])
	}
	return iss.Email
}

func (iss *Issuer) accountKeys() (recordKey, privKey string, err error) {
	if sole := iss.sole.Load(); sole != nil && iss.Email == "" {
		return sole[0], sole[1], nil
	}
	recordKey, err = storage.AccountKey(iss.ID(), iss.Email)
	if err != nil {
		return "", "", err
	}
	privKey, err = storage.AccountPrivateKey(iss.ID(), iss.Email)
	return recordKey, privKey, err
}

// errRecordDamaged is wrapped by loadAccount's error for an account record
// that does not decode (a crash of something else, an edit, a disk error):
// the record holds nothing the key cannot find again, so Account recovers
// the account from its key and stores the record anew, as for a missing
// record.
var errRecordDamaged = errors.New("the account record is damaged")

// damagedKey is the error for an account key that does not parse, saying
// what to do about it.
func damagedKey(privKey, recordKey string, err error) error {
	return fmt.Errorf("%w: %s: %w: restore it from a backup, or remove %s and %s to register a new account",
		ErrAccountKeyDamaged, privKey, err, privKey, recordKey)
}

// loadAccount reads the stored record and key; fs.ErrNotExist if either is
// missing, errRecordDamaged if the record does not decode.
func (iss *Issuer) loadAccount(ctx context.Context) (acme.Account, error) {
	recordKey, privKey, err := iss.accountKeys()
	if err != nil {
		return acme.Account{}, err
	}
	return iss.readAccount(ctx, recordKey, privKey, "")
}

// orderingAccount is the account req is ordered from, with the email it
// is stored under: for a renewal, the account that ordered the
// certificate it replaces when storage holds it at this CA (certbot's
// beside lego's, both imported), as the CA accepts a replacement only
// from that account; else the issuer's own (Account, Email), which is
// then registered only if it is needed.
func (iss *Issuer) orderingAccount(ctx context.Context, req issuer.Request) (acme.Account, string, error) {
	if req.Replaces == nil || req.ReplacesAccount == "" {
		acct, err := iss.Account(ctx)
		return acct, iss.ownEmail(), err
	}
	iss.acctMu.Lock()
	own := iss.acct
	iss.acctMu.Unlock()
	if own != nil && own.Location == req.ReplacesAccount {
		return *own, iss.ownEmail(), nil
	}
	ownKey, err := storage.AccountKey(iss.ID(), iss.Email)
	if err != nil {
		return acme.Account{}, "", err
	}
	keys, _ := iss.Storage.List(ctx, path.Dir(ownKey)+"/")
	for _, k := range keys {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		acct, err := iss.readAccount(ctx, k, strings.TrimSuffix(k, ".json")+".key", req.ReplacesAccount)
		if err != nil {
			continue
		}
		if k == ownKey {
			return acct, iss.ownEmail(), nil
		}
		iss.logger().Info("renewing from the account that ordered the certificate, the one whose replacement the CA accepts",
			slog.String("issuer", iss.ID()), slog.String("account", req.ReplacesAccount), slog.String("record", k))
		return acct, storage.AccountEmail(k), nil
	}
	acct, err := iss.Account(ctx)
	return acct, iss.ownEmail(), err
}

// readAccount reads the account record under recordKey and its key under
// privKey; fs.ErrNotExist if either is missing, or if want is not "" and
// the record's URL is not want.
func (iss *Issuer) readAccount(ctx context.Context, recordKey, privKey, want string) (acme.Account, error) {
	data, err := iss.Storage.Load(ctx, recordKey)
	if err != nil {
		return acme.Account{}, err
	}
	var rec accountRecord
	if err := json.Unmarshal(data, &rec); err != nil || rec.Location == "" {
		if err == nil {
			err = errors.New("no account URL")
		}
		return acme.Account{}, fmt.Errorf("decoding account record %s: %w (%w)", recordKey, errRecordDamaged, err)
	}
	if want != "" && rec.Location != want {
		return acme.Account{}, fmt.Errorf("account record %s is for %s: %w", recordKey, rec.Location, fs.ErrNotExist)
	}
	if rec.Status == acme.StatusDeactivated {
		return acme.Account{}, fmt.Errorf("%w (%s): register a new account for another email address, or remove %s and %s to register one for this address",
			ErrAccountDeactivated, rec.Location, iss.storedAt(recordKey), iss.storedAt(privKey))
	}
	keyPEM, err := iss.Storage.Load(ctx, privKey)
	if err != nil {
		return acme.Account{}, err
	}
	key, err := storage.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return acme.Account{}, damagedKey(privKey, recordKey, err)
	}
	return acme.Account{Status: acme.StatusValid, Location: rec.Location, Contact: rec.Contact, PrivateKey: key}, nil
}

// storedAt names where Storage keeps key, for a message that says what
// to remove: the file, in a storage of files (one with a Path method, as
// filestore's), else the key.
func (iss *Issuer) storedAt(key string) string {
	if ps, ok := iss.Storage.(interface{ Path(string) (string, error) }); ok {
		if p, err := ps.Path(key); err == nil {
			return p
		}
	}
	return key
}

// register finds the account for the stored key, or registers a new one.
// With force, the CA has said it does not know the key's account, so the
// lookup is skipped.
func (iss *Issuer) register(ctx context.Context, force bool) (acme.Account, error) {
	recordKey, privKey, err := iss.accountKeys()
	if err != nil {
		return acme.Account{}, err
	}
	acct := acme.Account{}
	if err := CheckEmail(iss.Email); err != nil {
		return acme.Account{}, fmt.Errorf("registering an account: email %w", err)
	}
	if iss.Email != "" {
		acct.Contact = []string{"mailto:" + iss.Email}
	}
	keyPEM, err := iss.Storage.Load(ctx, privKey)
	switch {
	case err == nil:
		if acct.PrivateKey, err = storage.ParsePrivateKeyPEM(keyPEM); err != nil {
			return acme.Account{}, damagedKey(privKey, recordKey, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		key, err := issuer.ECDSAP256.Generate()
		if err != nil {
			return acme.Account{}, fmt.Errorf("generating account key: %w", err)
		}
		pemBytes, err := storage.MarshalPrivateKeyPEM(key)
		if err != nil {
			return acme.Account{}, err
		}
		// Stored before registration: if we crash after the CA has the
		// account, the next run finds it from this key.
		if err := iss.Storage.Store(ctx, privKey, pemBytes); err != nil {
			return acme.Account{}, fmt.Errorf("storing account key: %w", err)
		}
		acct.PrivateKey = key
		force = true // a new key cannot have an account
	default:
		return acme.Account{}, fmt.Errorf("loading account key: %w", err)
	}

	client, err := iss.client(ctx)
	if err != nil {
		return acme.Account{}, err
	}
	var found acme.Account
	if !force {
		err = iss.do(ctx, "looking up account", func(ctx context.Context) error {
			var err error
			found, err = client.GetAccount(ctx, acct)
			return err
		})
		switch {
		case err == nil:
			iss.logger().Info("ACME account recovered from its key",
				slog.String("issuer", iss.ID()), slog.String("account", found.Location))
		case isProblem(err, acme.ProblemTypeAccountDoesNotExist):
			err = nil
		default:
			return acme.Account{}, fmt.Errorf("looking up account at %s: %w", iss.where(), err)
		}
	}
	if found.Location == "" {
		found, err = iss.newAccount(ctx, client, acct)
		if err != nil {
			return acme.Account{}, err
		}
	}
	found.PrivateKey = acct.PrivateKey
	if len(found.Contact) == 0 {
		found.Contact = acct.Contact
	}
	rec, err := json.MarshalIndent(accountRecord{
		Location: found.Location, Contact: found.Contact,
		Directory: iss.directory(), Created: time.Now().UTC(),
	}, "", "\t")
	if err != nil {
		return acme.Account{}, err
	}
	if err := iss.Storage.Store(ctx, recordKey, rec); err != nil {
		return acme.Account{}, fmt.Errorf("storing account record: %w", err)
	}
	return found, nil
}

// newAccount registers acct, agreeing to the terms of service and binding
// an external account when configured.
func (iss *Issuer) newAccount(ctx context.Context, client *acme.Client, acct acme.Account) (acme.Account, error) {
	dir, err := iss.getDirectory(ctx)
	if err != nil {
		return acme.Account{}, err
	}
	tos := ""
	if dir.Meta != nil {
		tos = dir.Meta.TermsOfService
	}
	acct.TermsOfServiceAgreed = true
	if iss.AgreeTerms != nil && !iss.AgreeTerms(tos) {
		return acme.Account{}, fmt.Errorf("registering at %s: the terms of service (%s) were not agreed to", iss.where(), tos)
	}
	if iss.EAB != nil {
		if err := acct.SetExternalAccountBinding(ctx, client, *iss.EAB); err != nil {
			return acme.Account{}, fmt.Errorf("external account binding (key ID %q): %w", iss.EAB.KeyID, err)
		}
	} else if dir.Meta != nil && dir.Meta.ExternalAccountRequired {
		return acme.Account{}, fmt.Errorf("the CA at %s %w: set EAB (the key ID and HMAC key from your CA account)", iss.where(), ErrEABRequired)
	}
	if others := iss.OtherAccounts(ctx); len(others) > 0 {
		iss.logger().Warn("registering a new ACME account beside those storage holds at this CA: give the email of one of them to order with it "+
			"(an imported account keeps its history at the CA)", slog.String("issuer", iss.ID()), slog.String("email", cmp.Or(iss.Email, noEmail)),
			slog.Any("stored", others))
	}
	var created acme.Account
	err = iss.do(ctx, "registering account", func(ctx context.Context) error {
		var err error
		created, err = client.NewAccount(ctx, acct)
		return err
	})
	if err != nil {
		return acme.Account{}, fmt.Errorf("registering account at %s: %w", iss.where(), err)
	}
	iss.logger().Info("ACME account registered",
		slog.String("issuer", iss.ID()), slog.String("account", created.Location))
	return created, nil
}

// adoptSole makes an Issuer without Email order with the one account
// storage holds at its CA, when storage holds no account without a
// contact: an account registered by hand with an email (with external
// account binding, say) and then orders placed without naming it use it,
// as certbot does, rather than registering a second account beside it.
// Deactivated accounts do not count. With several accounts, or one that
// is damaged, nothing is adopted and the account without a contact is
// registered (newAccount warns, naming the others).
func (iss *Issuer) adoptSole(ctx context.Context) {
	if iss.Email != "" || iss.sole.Load() != nil {
		return
	}
	recordKey, _, err := iss.accountKeys()
	if err != nil {
		return
	}
	// The record, not the key: a key alone is left by a registration the
	// CA refused (it requires external account binding, which the
	// account registered by hand has).
	if _, err := iss.Storage.Load(ctx, recordKey); !errors.Is(err, fs.ErrNotExist) {
		return // the account without a contact exists (or storage fails: Account says so)
	}
	keys, err := iss.Storage.List(ctx, path.Dir(recordKey)+"/")
	if err != nil {
		return
	}
	var records []string
	for _, k := range keys {
		if strings.HasSuffix(k, ".json") && !iss.deactivated(ctx, k) {
			records = append(records, k)
		}
	}
	if len(records) != 1 {
		return
	}
	sole := [2]string{records[0], strings.TrimSuffix(records[0], ".json") + ".key"}
	acct, err := iss.readAccount(ctx, sole[0], sole[1], "")
	if err != nil {
		return
	}
	iss.sole.Store(&sole)
	iss.logger().Info("ordering with the only ACME account storage holds at this CA",
		slog.String("issuer", iss.ID()), slog.String("account", acct.Location),
		slog.String("email", strings.TrimSuffix(path.Base(sole[0]), ".json")))
}

// deactivated reports whether the account record under key says the
// account was deactivated: it orders nothing, so it is not one to choose
// between (a CLI trial's deactivated second account made the orders
// without an email register a third account, and renewals use it).
func (iss *Issuer) deactivated(ctx context.Context, key string) bool {
	data, err := iss.Storage.Load(ctx, key)
	if err != nil {
		return false
	}
	var rec accountRecord
	return json.Unmarshal(data, &rec) == nil && rec.Status == acme.StatusDeactivated
}

// noEmail names the account without a contact in messages.
const noEmail = "(no email)"

// OtherAccounts lists the emails of the accounts Storage holds at this CA
// besides Email's ("(no email)" for the one without a contact), for
// messages that say which accounts there are to choose from.
func (iss *Issuer) OtherAccounts(ctx context.Context) []string {
	own, err := storage.AccountKey(iss.ID(), iss.Email)
	if err != nil {
		return nil
	}
	keys, _ := iss.Storage.List(ctx, path.Dir(own)+"/")
	var others []string
	for _, k := range keys {
		if k == own || !strings.HasSuffix(k, ".json") {
			continue
		}
		name := strings.TrimSuffix(path.Base(k), ".json")
		if def, _ := storage.AccountKey(iss.ID(), ""); k == def {
			name = noEmail
		}
		others = append(others, name)
	}
	return others
}
