package logsetup

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// NewHuman is the text log of a command a person (or cron) runs, rather
// than a service: each record is one line in the style of the command's
// own messages, "certkeeper: warning: MSG (key=value ...)", with no time
// (a terminal or cron's mail has it) and the attributes as slog's text
// format writes them. Three trials read the time=… level=WARN msg=… line
// of a library's warning as out of place between the command's
// "certkeeper: …" lines. Services keep New's text format: a journal
// wants the time and level fields. An unknown level is ErrLevel.
func NewHuman(w io.Writer, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, ErrLevel
	}
	h := &humanHandler{w: w, mu: new(sync.Mutex), buf: new(bytes.Buffer), level: lvl}
	h.attrs = slog.NewTextHandler(h.buf, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: dropHeader})
	return slog.New(h), nil
}

// humanHandler writes NewHuman's lines. Its attributes are formatted by
// a slog.TextHandler into buf (guarded by mu, shared by the handlers
// WithAttrs and WithGroup derive), with the time, level and message left
// out.
type humanHandler struct {
	w     io.Writer
	mu    *sync.Mutex
	buf   *bytes.Buffer
	attrs slog.Handler
	level slog.Level
}

// dropHeader leaves out the record's time, level and message, which the
// line says in its own words.
func dropHeader(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
		return slog.Attr{}
	}
	return a
}

func (h *humanHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *humanHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.attrs.Handle(ctx, r); err != nil {
		return err
	}
	var line strings.Builder
	line.WriteString("certkeeper: ")
	switch {
	case r.Level >= slog.LevelError:
		line.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		line.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		line.WriteString("debug: ")
	}
	line.WriteString(r.Message)
	if attrs := strings.TrimSpace(h.buf.String()); attrs != "" {
		line.WriteString(" (" + attrs + ")")
	}
	line.WriteByte('\n')
	_, err := io.WriteString(h.w, line.String())
	return err
}

func (h *humanHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = h.attrs.WithAttrs(as)
	return &c
}

func (h *humanHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.attrs = h.attrs.WithGroup(name)
	return &c
}
