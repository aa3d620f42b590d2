// Package logsetup makes the log/slog logger a command's log format and
// level ask for, and, for JSON logs, a writer that turns the human lines a
// command prints on stderr into JSON records too, so that every line a log
// shipper reads parses.
//
// It exists so that the command's logging setup is one tested piece. It
// does not read flags or the environment: the caller passes the values.
package logsetup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Errors of New.
var (
	ErrLevel  = errors.New("unknown log level: use debug, info, warn or error")
	ErrFormat = errors.New("unknown log format: use text or json")
)

// New is a logger writing to w in format ("text" or "json") the records
// at level ("debug", "info", "warn", "error") and above. An unknown level
// is ErrLevel, an unknown format ErrFormat.
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, ErrLevel
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		opts.ReplaceAttr = readableDuration
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, ErrFormat
}

// readableDuration writes a duration as a person reads one ("7.04s",
// rounded to the millisecond from a second up and to the microsecond from
// a millisecond up), not as slog's JSON does (7040003141 nanoseconds,
// which a trial's operator read in a log viewer).
func readableDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(roundDuration(a.Value.Duration()).String())
	}
	return a
}

// roundDuration rounds d for a log line: to the millisecond from a second up, to
// the microsecond from a millisecond up; shorter ones are left as they are.
func roundDuration(d time.Duration) time.Duration {
	switch abs := max(d, -d); {
	case abs >= time.Second:
		return d.Round(time.Millisecond)
	case abs >= time.Millisecond:
		return d.Round(time.Microsecond)
	}
	return d
}

// JSONAsked reports whether command-line args hold --log-format json (or
// -log-format, or =json), or, when they name no format, envFormat (the
// environment's) is json: a flag error found before the flags were all
// read can still be a JSON record (a trial's collector dropped the plain
// line).
func JSONAsked(args []string, envFormat string) bool {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		switch f := strings.TrimLeft(a, "-"); {
		case strings.HasPrefix(f, "log-format="):
			return f == "log-format=json"
		case f == "log-format" && i+1 < len(args):
			return args[i+1] == "json"
		}
	}
	return strings.TrimSpace(envFormat) == "json"
}

// Lines is stderr under JSON logs: each line written ("certkeeper: proxy
// listening on …") becomes a JSON record at Info, whatever the log level;
// a warning ("certkeeper: warning: …", "… is deprecated and will be
// removed; use …") at Warn, so that a collector
// filtering on the level sees it (a trial's start-up warnings were Info).
// It is safe for concurrent use.
type Lines struct {
	mu     sync.Mutex // guards buf
	buf    []byte     // a line not yet complete
	logger *slog.Logger
}

// warningPrefix starts the lines that Lines logs at Warn, with those that
// say a flag or key is deprecated.
const (
	warningPrefix = "certkeeper: warning: "
	deprecated    = " is deprecated and will be removed; use "
)

// NewLines returns a Lines that writes its records to w.
func NewLines(w io.Writer) *Lines {
	return &Lines{logger: slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// Write logs each complete line as one record; blank lines are dropped.
func (j *Lines) Write(p []byte) (int, error) { return j.write(p, slog.LevelInfo) }

// Errors returns a writer that logs what each Write holds as one record
// at Error: the error that ends a command ("certkeeper proxy: port 443 is
// already in use"), which a collector alerting on the level must see (a
// trial's were Info). The lines after the first ("Run 'certkeeper proxy
// --help' for usage.") are its "hint", not records of their own at Error
// (a trial counted two errors for one).
func (j *Lines) Errors() io.Writer { return errorLines{j} }

type errorLines struct{ j *Lines }

func (e errorLines) Write(p []byte) (int, error) {
	var msg string
	var hint []string
	for line := range strings.Lines(string(p)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case msg == "":
			msg = line
		default:
			hint = append(hint, line)
		}
	}
	if msg == "" {
		return len(p), nil
	}
	e.j.mu.Lock()
	defer e.j.mu.Unlock()
	if len(hint) == 0 {
		e.j.logger.Error(msg)
	} else {
		e.j.logger.Error(msg, slog.String("hint", strings.Join(hint, " ")))
	}
	return len(p), nil
}

// write logs each complete line of p at level, or at Warn if it is a
// warning.
func (j *Lines) write(p []byte, level slog.Level) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = append(j.buf, p...)
	for {
		i := bytes.IndexByte(j.buf, '\n')
		if i < 0 {
			break
		}
		line := string(bytes.TrimSpace(j.buf[:i]))
		j.buf = j.buf[i+1:]
		if line == "" {
			continue
		}
		l := level
		if level < slog.LevelWarn && (strings.HasPrefix(line, warningPrefix) || strings.Contains(line, deprecated)) {
			l = slog.LevelWarn
		}
		j.logger.Log(context.Background(), l, line)
	}
	return len(p), nil
}

// MapErrors returns a handler that passes the error of each record's "err"
// attribute through f before h handles it: a command adds what to type to
// the library errors a library logs (they name fields, not flags).
func MapErrors(h slog.Handler, f func(error) error) slog.Handler {
	return errorMapper{h, f}
}

type errorMapper struct {
	slog.Handler
	f func(error) error
}

func (m errorMapper) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "err" {
			a = slog.Any("err", m.f(err))
		}
		out.AddAttrs(a)
		return true
	})
	return m.Handler.Handle(ctx, out)
}

func (m errorMapper) WithAttrs(attrs []slog.Attr) slog.Handler {
	return errorMapper{m.Handler.WithAttrs(attrs), m.f}
}

func (m errorMapper) WithGroup(name string) slog.Handler {
	return errorMapper{m.Handler.WithGroup(name), m.f}
}

// StdLog is a writer for the log package's process-wide output
// (log.SetOutput), which some libraries write to with no logger of ours
// to use: net/http's Transport says "Unsolicited response received on idle
// HTTP channel" there when a backend answers a request it was not sent.
// Each write (the log package writes a line at a time) becomes a record
// of Logger() at Level, so a JSON log stays JSON. While Logger() is nil
// the lines go to Fallback.
type StdLog struct {
	Logger   func() *slog.Logger
	Level    slog.Level
	Fallback io.Writer
}

// Write logs p, one line, as a record.
func (s StdLog) Write(p []byte) (int, error) {
	l := s.Logger()
	if l == nil {
		return s.Fallback.Write(p)
	}
	l.Log(context.Background(), s.Level, string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
