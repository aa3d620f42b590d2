package logsetup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	var b bytes.Buffer
	l, err := New(&b, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", "name", "a.example")
	if got := b.String(); strings.Contains(got, "hidden") || !strings.Contains(got, `"msg":"shown","name":"a.example"`) {
		t.Errorf("json at warn wrote %q", got)
	}
	b.Reset()
	if l, err = New(&b, "text", "DEBUG"); err != nil {
		t.Fatal(err)
	}
	l.Debug("detail")
	if !strings.Contains(b.String(), "level=DEBUG msg=detail") {
		t.Errorf("text at debug wrote %q", b.String())
	}
	if _, err := New(&b, "text", "loud"); !errors.Is(err, ErrLevel) {
		t.Errorf("New(level loud) = %v, want ErrLevel", err)
	}
	if _, err := New(&b, "xml", "info"); !errors.Is(err, ErrFormat) {
		t.Errorf("New(format xml) = %v, want ErrFormat", err)
	}
}

// TestLines: each complete line, written in pieces or several at once,
// is one JSON record, a warning at WARN and the others at INFO; blank
// lines are dropped.
func TestLines(t *testing.T) {
	var b bytes.Buffer
	w := NewLines(&b)
	for _, p := range []string{"certkeeper: one", " part\ncertkeeper: two\n", "\n", "certkeeper: three\nunfinished"} {
		if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level != "INFO" {
			t.Fatalf("line %q: %v, level %q", line, err, rec.Level)
		}
		msgs = append(msgs, rec.Msg)
	}
	if got := strings.Join(msgs, "|"); got != "certkeeper: one part|certkeeper: two|certkeeper: three" {
		t.Errorf("records %q", got)
	}
	b.Reset()
	for _, line := range []string{"certkeeper: warning: --route a.test: no --allow pattern covers it",
		"certkeeper: p.yaml:8: deploy_out is deprecated and will be removed; use deploy_out_dir"} {
		b.Reset()
		fmt.Fprintln(NewLines(&b), line)
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal(b.Bytes(), &rec); err != nil || rec.Level != "WARN" {
			t.Errorf("a warning line is logged %s: %v, want level WARN", b.String(), err)
		}
	}
}

// TestJSONDurations: a duration in a JSON record reads as in the text
// log, "1.5s", not as nanoseconds.
func TestJSONDurations(t *testing.T) {
	var b bytes.Buffer
	l, err := New(&b, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("certificate obtained", slog.Duration("took", 1500*time.Millisecond),
		slog.Duration("long", 7040003141*time.Nanosecond), slog.Duration("short", 2345678*time.Nanosecond),
		slog.Duration("tiny", 1234*time.Nanosecond))
	for _, want := range []string{`"took":"1.5s"`, `"long":"7.04s"`, `"short":"2.346ms"`, `"tiny":"1.234µs"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("record %s, want %s", b.String(), want)
		}
	}
}

// TestLinesErrors: the error that ends a command is one Error record, so
// that a collector alerting on the level sees it (a container trial's
// read-only volume ended the proxy with an Info record), and its "Run
// --help" line is that record's hint, not a second error.
func TestLinesErrors(t *testing.T) {
	var b bytes.Buffer
	w := NewLines(&b)
	fmt.Fprintln(w, "certkeeper: storage: /var/lib/certkeeper")
	fmt.Fprintf(w.Errors(), "certkeeper proxy: port 443 is already in use\nRun 'certkeeper proxy --help' for usage.\n")
	var levels []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var rec struct{ Level, Msg, Hint string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		levels = append(levels, rec.Level)
		if rec.Level == "ERROR" && (rec.Msg != "certkeeper proxy: port 443 is already in use" || rec.Hint != "Run 'certkeeper proxy --help' for usage.") {
			t.Errorf("error record %s, want the error as msg and the usage line as hint", line)
		}
	}
	if got := strings.Join(levels, " "); got != "INFO ERROR" {
		t.Errorf("levels %s, want INFO ERROR:\n%s", got, b.String())
	}
}

func TestMapErrors(t *testing.T) {
	var buf bytes.Buffer
	base := errors.New("no zone")
	logger := slog.New(MapErrors(slog.NewTextHandler(&buf, nil), func(err error) error {
		return fmt.Errorf("%w; give --dns-zone", err)
	})).With("name", "a.test")
	logger.Warn("lookup failed", "err", base, "other", base)
	if got := buf.String(); !strings.Contains(got, `err="no zone; give --dns-zone"`) || !strings.Contains(got, `other="no zone"`) ||
		!strings.Contains(got, "name=a.test") {
		t.Errorf("logged %q: want the err attribute mapped, the others as they were", got)
	}
}

// TestStdLog: a line of the log package, written through StdLog, is a
// record of the logger at the level given (JSON under JSON logs), and goes
// to the fallback while there is no logger.
func TestStdLog(t *testing.T) {
	var out, fallback strings.Builder
	var logger *slog.Logger
	std := log.New(StdLog{Logger: func() *slog.Logger { return logger }, Level: slog.LevelDebug, Fallback: &fallback}, "", 0)
	std.Printf("early")
	if fallback.String() != "early\n" {
		t.Errorf("fallback = %q, want the line written before a logger", fallback.String())
	}
	logger, _ = New(&out, "json", "debug")
	std.Printf("Unsolicited response received on idle HTTP channel starting with %q", "HTTP/1.1 400")
	var rec map[string]any
	if err := json.Unmarshal([]byte(out.String()), &rec); err != nil {
		t.Fatalf("the line is not one JSON record: %v\n%s", err, out.String())
	}
	if rec["level"] != "DEBUG" || rec["msg"] != `Unsolicited response received on idle HTTP channel starting with "HTTP/1.1 400"` {
		t.Errorf("record = %v", rec)
	}
}

func TestJSONAsked(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  string
		want bool
	}{
		{[]string{"proxy", "--log-format", "json", "--bogus"}, "", true},
		{[]string{"-log-format=json"}, "", true},
		{[]string{"proxy", "--log-format", "text", "json"}, "json", false},
		{[]string{"--log-format=text"}, "json", false},
		{[]string{"log-format=json"}, "", false},
		{[]string{"--log-format"}, "", false},
		{[]string{"proxy", "--bogus"}, "json", true},
		{nil, "", false},
	} {
		if got := JSONAsked(tt.args, tt.env); got != tt.want {
			t.Errorf("JSONAsked(%q, %q) = %v, want %v", tt.args, tt.env, got, tt.want)
		}
	}
}
