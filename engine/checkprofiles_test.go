package engine

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestCheckProfiles: at start, a profile the CA does not offer is a
// SettingError of Profile naming those it does, for the Settings' CAs and
// a rule's (a trial's typo passed the start and failed every order); one
// it offers passes, and a CA that gives no answer is logged, not refused.
func TestCheckProfiles(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	logs := &testsvc.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	check := func(profile, ruleProfile, url string) error {
		t.Helper()
		s := &Settings{CAs: []string{url}, Account: Account{Profile: profile, HTTPClient: ca.HTTPClient()}, TLSALPN01: true}
		if ruleProfile != "" {
			s.Rules = []Rule{{Pattern: "*.b.test", CAs: []string{url}, Profile: ruleProfile}}
		}
		m, err := s.Manager(filestore.New(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		return CheckProfiles(t.Context(), m, logger)
	}
	if err := check("default", "", ca.DirectoryURL()); err != nil {
		t.Errorf("a profile Pebble offers: %v", err)
	}
	err := check("nosuchprofile", "", ca.DirectoryURL())
	var se *SettingError
	if !errors.As(err, &se) || se.Field != "Profile" || se.Rule != -1 || !errors.Is(err, acmeca.ErrUnknownProfile) || !strings.Contains(err.Error(), "offers: default") {
		t.Errorf("a profile Pebble does not offer: %v, want a SettingError of Profile naming those it offers", err)
	}
	if err := check("default", "nosuchprofile", ca.DirectoryURL()); !errors.As(err, &se) || se.Rule != 0 || se.Pattern != "*.b.test" {
		t.Errorf("a rule's profile Pebble does not offer: %v, want a SettingError of rule 0", err)
	}
	closed := "https://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t)) + "/dir" // nothing listens there
	if err := check("nosuchprofile", "", closed); err != nil {
		t.Errorf("a CA that does not answer: %v, want no error", err)
	}
	if !strings.Contains(logs.String(), "its profile is checked at the first order") {
		t.Errorf("a CA that does not answer was not logged:\n%s", logs)
	}
}
