package certkeeper_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestCloseFinishesBackgroundStores: what a first certificate leaves for
// after its handshake — the duplicate count in state/limits and the
// issue lock's release — is done when Close returns, so a process that
// closes its Manager and exits leaves both as if they had been done
// before the handshake.
func TestCloseFinishesBackgroundStores(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	st := filestore.New(dir)
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&acmeca.Issuer{
		DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Profile: "default",
		ChallengeOrder: []string{acmeca.TLSALPN01}}}}
	serveOnPort(t, m, ca.TLSPort())
	for _, name := range []string{"a.bg.test", "b.bg.test"} {
		if err := m.Cert(t.Context(), name); err != nil {
			t.Fatalf("Cert(%q): %v", name, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	data, err := st.Load(t.Context(), storage.StateKey("limits"))
	if err != nil {
		t.Fatalf("state/limits after Close: %v", err)
	}
	var state struct {
		Duplicates json.RawMessage `json:"duplicates"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatalf("state/limits: %v", err)
	}
	for _, name := range []string{"a.bg.test", "b.bg.test"} {
		if !json.Valid(state.Duplicates) || !strings.Contains(string(state.Duplicates), name) {
			t.Errorf("state/limits duplicates = %s, want a count for %s", state.Duplicates, name)
		}
	}

	var leases []string
	_ = filepath.WalkDir(filepath.Join(dir, ".locks"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			leases = append(leases, path)
		}
		return nil
	})
	if len(leases) > 0 {
		t.Errorf("lock leases left after Close: %v", leases)
	}
}

// TestIssuerLogsToManagerLogger: an acmeca.Issuer without a Logger of its
// own logs through the Manager's, so a JSON Manager.Logger gets the
// issuer's lines as JSON too (newcomer trial: "ACME account registered"
// came out as text through slog.Default()).
func TestIssuerLogsToManagerLogger(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	logs := &lockedWriter{}
	m := &certkeeper.Manager{Storage: filestore.New(t.TempDir()), Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Profile: "default",
			ChallengeOrder: []string{acmeca.TLSALPN01}}}}
	defer m.Close()
	serveOnPort(t, m, ca.TLSPort())
	if err := m.Cert(t.Context(), "log.test"); err != nil {
		t.Fatalf("Cert: %v", err)
	}
	if logs.count(`"msg":"ACME account registered"`) != 1 {
		t.Errorf("the Manager's JSON log lacks the issuer's account line")
	}
}
