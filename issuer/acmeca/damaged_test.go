package acmeca_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestDamagedAccountFiles: a stored account record that does not decode
// (truncated) is rebuilt from the key, with the same account and no new
// registration; a damaged account key stops the issuer with
// ErrAccountKeyDamaged and says what to do, and registers nothing either
// (trial 28).
func TestDamagedAccountFiles(t *testing.T) {
	e := newEnv(t, testca.Options{})
	ctx := t.Context()
	first, err := e.issuer(acmeca.HTTP01).Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.ca.WaitFor(t, "one account", func() bool { return e.ca.Accounts() == 1 })
	recordKey, privKey := accountKeys(t, e.issuer(acmeca.HTTP01))
	record, err := e.storage.Load(ctx, recordKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, damaged := range [][]byte{record[:len(record)/2], []byte("{}"), nil} {
		if err := e.storage.Store(ctx, recordKey, damaged); err != nil {
			t.Fatal(err)
		}
		got, err := e.issuer(acmeca.HTTP01).Account(ctx)
		if err != nil || got.Location != first.Location {
			t.Fatalf("Account with the record %q = %q, %v; want %q found again from the key", damaged, got.Location, err, first.Location)
		}
		if again, err := e.storage.Load(ctx, recordKey); err != nil || !strings.Contains(string(again), first.Location) {
			t.Errorf("record after the recovery = %q, %v; want it stored anew", again, err)
		}
	}

	keyPEM, err := e.storage.Load(ctx, privKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.storage.Store(ctx, privKey, keyPEM[:len(keyPEM)/2]); err != nil {
		t.Fatal(err)
	}
	_, err = e.issuer(acmeca.HTTP01).Account(ctx)
	if !errors.Is(err, acmeca.ErrAccountKeyDamaged) || !strings.Contains(err.Error(), "restore it from a backup") ||
		!strings.Contains(err.Error(), recordKey) {
		t.Errorf("Account with a truncated key: %v; want ErrAccountKeyDamaged saying what to do", err)
	}
	if _, _, err := e.issuer(acmeca.HTTP01).Register(ctx, nil); !errors.Is(err, acmeca.ErrAccountKeyDamaged) {
		t.Errorf("Register with a truncated key: %v; want ErrAccountKeyDamaged", err)
	}
	if n := e.ca.Accounts(); n != 1 {
		t.Errorf("the CA has %d accounts, want the first one only", n)
	}
}

// TestAccountRestoredToStorage: an issuer whose account storage lost (a
// Redis without persistence, restarted) stores it again at its next use,
// so another node finds it rather than registering a second account; and
// one that finds another account stored (registered by a node that found
// none) orders from that one. A cluster trial's nodes split across two
// accounts, and renewals from the wrong one were refused their replaces.
func TestAccountRestoredToStorage(t *testing.T) {
	e := newEnv(t, testca.Options{})
	ctx := t.Context()
	iss := e.issuer(acmeca.HTTP01)
	acmeca.SetRecheckEvery(iss, time.Nanosecond)
	first, err := iss.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recordKey, privKey := accountKeys(t, iss)
	for _, k := range []string{recordKey, privKey} {
		if err := e.storage.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := iss.Account(ctx); err != nil || got.Location != first.Location {
		t.Fatalf("Account after storage lost it = %q, %v; want %q", got.Location, err, first.Location)
	}
	if got, err := e.issuer(acmeca.HTTP01).Account(ctx); err != nil || got.Location != first.Location {
		t.Errorf("another node's Account after the first stored it again = %q, %v; want %q", got.Location, err, first.Location)
	}
	if n := e.ca.Accounts(); n != 1 {
		t.Errorf("%d accounts at the CA, want 1: storage got the account back before anyone registered", n)
	}

	// Another account in storage, as a node that found none registers.
	other := e.issuer(acmeca.HTTP01)
	other.Storage = filestore.New(t.TempDir())
	second, err := other.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{recordKey, privKey} {
		data, err := other.Storage.Load(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.storage.Store(ctx, k, data); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := iss.Account(ctx); err != nil || got.Location != second.Location {
		t.Errorf("Account with another account stored = %q, %v; want that one, %q", got.Location, err, second.Location)
	}
}

// accountKeys are the storage keys of iss's account record and key.
func accountKeys(t *testing.T, iss *acmeca.Issuer) (recordKey, privKey string) {
	t.Helper()
	recordKey, err := storage.AccountKey(iss.ID(), iss.Email)
	if err != nil {
		t.Fatal(err)
	}
	privKey, err = storage.AccountPrivateKey(iss.ID(), iss.Email)
	if err != nil {
		t.Fatal(err)
	}
	return recordKey, privKey
}
