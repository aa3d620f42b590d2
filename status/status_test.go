package status_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/status"
)

// TestIsExpiring: the one definition of "expiring", for certificates
// certkeeper renews and for certificate files only their owner renews.
func TestIsExpiring(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(90 * 24 * time.Hour)
	day := 24 * time.Hour
	for _, tc := range []struct {
		name    string
		now     time.Time
		renewed bool
		want    bool
	}{
		{"renewed, fresh", start.Add(day), true, false},
		{"renewed, a third left", end.Add(-29 * day), true, false},
		{"renewed, a tenth left", end.Add(-8 * day), true, true},
		{"renewed, expired", end, true, false},
		{"file, fresh", start.Add(day), false, false},
		{"file, a third left", end.Add(-29 * day), false, true},
		{"file, expired", end.Add(time.Second), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.IsExpiring(start, end, tc.now, tc.renewed); got != tc.want {
				t.Errorf("IsExpiring(%v, %v, %v, %v) = %v, want %v", start, end, tc.now, tc.renewed, got, tc.want)
			}
		})
	}
	// A short-lived file certificate is expiring with 14 days left even
	// when more than a third of its life is left.
	if !status.IsExpiring(start, start.Add(30*day), start.Add(17*day), false) {
		t.Error("a file certificate with 13 days left is not expiring")
	}
	// A 10-day one is not expiring when made (it was, with 14 days as
	// the bound whatever the lifetime), and is with less than half left.
	if status.IsExpiring(start, start.Add(10*day), start.Add(time.Hour), false) || !status.IsExpiring(start, start.Add(10*day), start.Add(6*day), false) {
		t.Error("a 10-day file certificate: expiring when made, or not with 4 days left")
	}
	if got := status.FileState(start, end, end); got != status.Expired {
		t.Errorf("FileState at NotAfter = %q, want expired", got)
	}
}

// TestArrayWriter: the streamed array is byte for byte what a json.Encoder
// with a two-space indent writes for the whole list.
func TestArrayWriter(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, list := range [][]status.Cert{
		{},
		{{Names: []string{"a.test"}, State: status.Fine, NotAfter: at, Key: "certificates/x/a.test.json"}},
		{{Names: []string{"a.test", "<b>.test"}, State: status.Failing, LastError: "x & y"}, {Key: "k", State: status.Damaged}},
	} {
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(list); err != nil {
			t.Fatal(err)
		}
		w := &status.ArrayWriter{W: &got}
		for _, c := range list {
			if err := w.Write(c); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("streamed:\n%s\nwant:\n%s", got.String(), want.String())
		}
	}
}

// TestCovers: a certificate is for one of its names, and for a name one
// label under a wildcard among them; not for the wildcard's zone itself
// or a deeper name. A damaged record is for the name of its key.
func TestCovers(t *testing.T) {
	c := status.Cert{Names: []string{"a.test", "*.b.test"}}
	for name, want := range map[string]bool{
		"a.test": true, "x.b.test": true, "*.b.test": true,
		"b.test": false, "y.x.b.test": false, "x.a.test": false, "test": false,
	} {
		if got := c.Covers(name); got != want {
			t.Errorf("%v covers %s: %v, want %v", c.Names, name, got, want)
		}
	}
	// A damaged record has no names: its key says whose it is.
	for key, want := range map[string]bool{
		"certificates/local/a.test.json": true, "certificates/local/a.test_rsa.json": true,
		"certificates/local/b.a.test.json": false, "certificates/local/a.test.x.json": false, "state/a.test.json": false,
	} {
		if got := (status.Cert{Key: key, State: status.Damaged}).Covers("a.test"); got != want {
			t.Errorf("damaged record %s covers a.test: %v, want %v", key, got, want)
		}
	}
}
