package acmeca_test

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage"
)

// TestRolloverInterrupted: an account key rollover whose request reaches
// the CA while its client never hears back. Before, a lost reply made the
// rollover fail and delete the new key the CA now required: every later
// request failed ("JWS verification error") and nothing could recover the
// account. Now the rollover asks the CA which key it holds (lost reply:
// the rollover succeeds), and a rollover cut short (the process killed,
// the new key left as .next) is finished by the next process that loads
// the account. Each time, a new Issuer on the same storage then issues
// with the same account, and the stored key is the one the CA holds.
func TestRolloverInterrupted(t *testing.T) {
	e := newEnv(t, testca.Options{})
	proxy, fresh := e.throughProxy(t)
	iss := fresh()
	first, _ := issue(t, iss, issuer.ECDSAP256, "roll.a.test")
	privKey, err := storage.AccountPrivateKey(iss.ID(), iss.Email)
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		again, _, err := tryIssue(t, fresh(), issuer.ECDSAP256, nil, "roll.a.test")
		if err != nil {
			t.Fatalf("%s: issuing with the stored account: %v", when, err)
		}
		if again.Account != first.Account {
			t.Errorf("%s: ordered from %s, want the same account %s", when, again.Account, first.Account)
		}
		if _, err := e.storage.Load(t.Context(), privKey+".next"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the rollover's .next key is still stored (%v)", when, err)
		}
	}

	// The reply is lost.
	proxy.LoseReply("key-change", 1)
	if _, err := iss.RolloverKey(t.Context(), issuer.ECDSAP256); err != nil {
		t.Fatalf("rollover with its reply lost: %v", err)
	}
	check("after a rollover whose reply was lost")

	// The process dies while the CA switches keys.
	proxy.PauseAfter("key-change")
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := fresh().RolloverKey(ctx, issuer.ECDSAP256)
		errc <- err
	}()
	for deadline := time.Now().Add(time.Minute); proxy.Held() < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the key-change request did not reach the CA within a minute")
		}
	}
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a rollover cut short reported success")
	}
	proxy.Resume()
	if _, err := e.storage.Load(t.Context(), privKey+".next"); err != nil {
		t.Fatalf("the new key is not kept after a rollover cut short: %v", err)
	}
	check("after a rollover cut short")
}

// TestDeactivateReplyLost: the CA deactivates the account and the reply is
// lost; the retry is refused (unauthorized: the key of a deactivated
// account). Deactivate must still succeed and mark the record, so that the
// next use says the account is deactivated and what to do, rather than
// failing at the CA; before, it failed, and so did every later attempt.
func TestDeactivateReplyLost(t *testing.T) {
	e := newEnv(t, testca.Options{})
	proxy, newIssuer := e.throughProxy(t)
	iss := newIssuer()
	issue(t, iss, issuer.ECDSAP256, "deact.a.test")
	proxy.LoseReply("account", 1)
	if err := iss.Deactivate(t.Context()); err != nil {
		t.Fatalf("deactivating, the reply lost: %v", err)
	}
	if _, err := iss.Account(t.Context()); !errors.Is(err, acmeca.ErrAccountDeactivated) {
		t.Errorf("the account after its deactivation: %v, want ErrAccountDeactivated", err)
	}
}
