package certserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
)

// AuditFile is an audit log appended to a file as JSON lines, through an
// AuditWriter: what a Handler's Audit and AuditErr want when the audit
// trail must survive the process.
type AuditFile struct {
	// Logger writes the audit lines: the Handler's Audit.
	Logger *slog.Logger

	f      *reopening
	w      *AuditWriter
	logger *slog.Logger
}

// OpenAuditFile opens name for appending (created with mode 0600, in a
// directory created 0700 if missing: the lines name who fetched which key;
// a fresh host has no /var/log/certkeeper; an existing file that group or
// other users may read is made 0600, with a warning) and writes a first
// line, "audit log
// opened" with attrs (say, the process ID and version), so that a file
// that cannot be written shows at once: call Sync to know, before the
// server listens. Failed writes are logged to logger (nil: slog.Default())
// as they happen.
//
// A file moved or removed (logrotate's rename and "create", or a
// rotation that deletes it) is opened anew by name at the next line, as
// every write first checks that name is still the file it writes to: the
// lines went on into the rotated file, or into a deleted one, where no
// error said they were lost. A rotation needs no signal, and
// "copytruncate" works too.
func OpenAuditFile(name string, logger *slog.Logger, attrs ...slog.Attr) (*AuditFile, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return nil, fmt.Errorf("creating its directory: %w", err)
	}
	f, err := openAppend(name, logger)
	if err != nil {
		return nil, err
	}
	r := &reopening{name: name, f: f, logger: logger}
	w := NewAuditWriter(r, logger)
	a := &AuditFile{Logger: slog.New(slog.NewJSONHandler(w, nil)), f: r, w: w, logger: logger}
	a.Logger.LogAttrs(context.Background(), slog.LevelInfo, "audit log opened", attrs...)
	return a, nil
}

// openAppend opens name for appending, created 0600 (restrictMode).
func openAppend(name string, logger *slog.Logger) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	restrictMode(f, logger)
	return f, nil
}

// reopening writes to the file name, opening it anew when name no longer
// is the file it holds open (moved or removed). Only the AuditWriter's
// goroutine writes; Close comes after it has stopped.
type reopening struct {
	name   string
	f      *os.File
	logger *slog.Logger
}

func (r *reopening) Write(p []byte) (int, error) {
	if err := r.follow(); err != nil {
		return 0, err
	}
	return r.f.Write(p)
}

// follow opens name anew if it is no longer the file r writes to.
func (r *reopening) follow() error {
	held, err := r.f.Stat()
	now, nerr := os.Stat(r.name)
	if err == nil && nerr == nil && os.SameFile(held, now) {
		return nil
	}
	f, err := openAppend(r.name, r.logger)
	if err != nil {
		return fmt.Errorf("opening the audit log %s again (it was moved or removed): %w", r.name, err)
	}
	_ = r.f.Close()
	r.f = f
	r.logger.Info("audit log opened again: the file was moved or removed (log rotation)", slog.String("file", r.name))
	return nil
}

// restrictMode makes the audit file f, if it is a regular file that its
// group or other users may read or write (one created before, by hand or
// by logrotate's "create 0644"), mode 0600, and warns on logger (nil:
// slog.Default()) that it did, or that it could not: the lines say who
// fetched which key. Not on Windows, whose modes do not say who may read
// a file.
func restrictMode(f *os.File, logger *slog.Logger) {
	if runtime.GOOS == "windows" {
		return
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	if logger == nil {
		logger = slog.Default()
	}
	attrs := []any{slog.String("file", f.Name()), slog.String("mode", fmt.Sprintf("%#o", fi.Mode().Perm()))}
	if err := f.Chmod(0o600); err != nil {
		logger.Warn("audit log file is readable by other users and its mode could not be made 0600: chmod 600 it",
			append(attrs, slog.Any("err", err))...)
		return
	}
	logger.Warn("audit log file was readable by other users: its mode is now 0600 (if logrotate recreates it, use \"create 0600\", not \"create 0644\")",
		attrs...)
}

// Err is the Handler's AuditErr: nil while the lines are being written,
// and the reason they are not otherwise (see AuditWriter.Err).
func (a *AuditFile) Err() error { return a.w.Err() }

// Sync waits until a write has been attempted for every line logged so
// far, and returns Err.
func (a *AuditFile) Sync() error { return a.w.Sync() }

// Close writes the lines still queued and closes the file. Its error says
// that lines were lost.
func (a *AuditFile) Close() error {
	err := a.w.Close()
	if cerr := a.f.f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing %s: %w", a.f.name, cerr))
	}
	return err
}

// Attach makes a the audit log of h: its Audit, and its AuditErr unless
// failOpen (then keys are handed out unrecorded while the file cannot be
// written; the failures are still logged). The func it returns closes a,
// logging to OpenAuditFile's logger (nil: slog.Default()) that lines
// were lost if they were: defer it once the server has stopped.
func (a *AuditFile) Attach(h *Handler, failOpen bool) (closeAudit func()) {
	h.Audit = a.Logger
	if !failOpen {
		h.AuditErr = a.Err
	}
	return func() {
		if err := a.Close(); err != nil {
			logger := a.logger
			if logger == nil {
				logger = slog.Default()
			}
			logger.Error("closing the audit log: lines were not written", slog.Any("err", err))
		}
	}
}

// StderrAudit is the audit log of a server without an audit file: lines
// on w (standard error, say), each with log=audit, at every level; JSON
// lines when jsonLines is true (a server whose log is JSON: each hand-out
// a record of its own, which a log shipper parses, where a container
// trial's were text inside another record's message), else text.
func StderrAudit(w io.Writer, jsonLines bool) *slog.Logger {
	var h slog.Handler = slog.NewTextHandler(w, nil)
	if jsonLines {
		h = slog.NewJSONHandler(w, nil)
	}
	return slog.New(h).With(slog.String("log", "audit"))
}
