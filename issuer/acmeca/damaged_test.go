package acmeca_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage"
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
	iss := e.issuer(acmeca.HTTP01)
	recordKey, err := storage.AccountKey(iss.ID(), iss.Email)
	if err != nil {
		t.Fatal(err)
	}
	privKey, err := storage.AccountPrivateKey(iss.ID(), iss.Email)
	if err != nil {
		t.Fatal(err)
	}
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
