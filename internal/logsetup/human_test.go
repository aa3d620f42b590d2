package logsetup

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"
)

// TestNewHuman: a one-shot command's log lines read as its own messages,
// "certkeeper: warning: MSG (attrs)", without the time; attributes added
// with With and groups keep slog's text format; records below the level
// are left out.
func TestNewHuman(t *testing.T) {
	var b bytes.Buffer
	l, err := NewHuman(&b, "info")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Warn("dns-01 record is in none of the zones given", "name", "z.a.test", slog.Any("zones", []string{"crop.test"}))
	l.With("issuer", "pebble").Error("failed", "err", errors.New("no answer"))
	l.Info("plain")
	l.WithGroup("g").Info("grouped", "k", "v")
	want := `certkeeper: warning: dns-01 record is in none of the zones given (name=z.a.test zones=[crop.test])
certkeeper: error: failed (issuer=pebble err="no answer")
certkeeper: plain
certkeeper: grouped (g.k=v)
`
	if got := b.String(); got != want {
		t.Errorf("lines:\n%s\nwant:\n%s", got, want)
	}
	if _, err := NewHuman(&b, "loud"); !errors.Is(err, ErrLevel) {
		t.Errorf("NewHuman(level loud) = %v, want ErrLevel", err)
	}
}
