package http01

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/mholt/acmez/v3/acme"

	"github.com/certkeeper/certkeeper/internal/atomicfile"
)

// Webroot answers http-01 through a web server that already owns port 80
// and serves files from Dir (certbot's "webroot" mode): Present writes the
// key authorization to Dir/.well-known/acme-challenge/TOKEN, which the
// server serves as a static file, and CleanUp removes it. Nothing listens,
// so the web server keeps running.
//
// The web server must serve that path for every name of the order, over
// plain HTTP on port 80, without redirecting it to a different host (a
// redirect to HTTPS on the same name is followed by the CA). The file is
// 0644: a key authorization is public by design.
//
// Tokens come from the CA; one that is not a base64url string (RFC 8555
// §8.1) is refused, so no token names a path outside the challenge
// directory. A Webroot is safe for concurrent use and must not be copied
// after first use.
type Webroot struct {
	// Dir is the web server's document root; it must exist. Required.
	Dir string
	// Logger receives a debug line for each file written and removed. Nil
	// means slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	created []string // directories Present made, deepest first
	files   int      // challenge files written and not yet removed
}

var errNotDir = errors.New("not a directory")

// ErrBadToken is returned for a challenge token that is not base64url.
var ErrBadToken = errors.New("http-01: token is not a base64url string")

// Present writes chal's key authorization where the web server serves it.
func (w *Webroot) Present(_ context.Context, chal acme.Challenge) error {
	path, err := w.path(chal)
	if err != nil {
		return err
	}
	if chal.KeyAuthorization == "" {
		return errors.New("http-01: challenge has no key authorization")
	}
	if err := w.Check(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.mkdirs(filepath.Dir(path)); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, []byte(chal.KeyAuthorization), 0o644); err != nil {
		return fmt.Errorf("http-01 webroot: writing the challenge file: %w", err)
	}
	w.files++
	w.logger().Debug("http-01 challenge file written", slog.String("file", path), slog.String("name", chal.Identifier.Value))
	return nil
}

// CleanUp removes chal's file and, once no challenge file of this Webroot
// is left, the directories Present made, if they are empty.
func (w *Webroot) CleanUp(_ context.Context, chal acme.Challenge) error {
	path, err := w.path(chal)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	err = os.Remove(path)
	switch {
	case err == nil:
		w.files--
	case errors.Is(err, os.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("http-01 webroot: removing the challenge file: %w", err)
	}
	w.logger().Debug("http-01 challenge file removed", slog.String("file", path))
	if w.files == 0 {
		for _, d := range w.created {
			_ = os.Remove(d) // fails if someone else put something there: then it stays
		}
		w.created = nil
	}
	return nil
}

// Check reports whether Dir can take challenge files: given, and an
// existing directory. Present checks it too; a program calls it to fail
// before ordering.
func (w *Webroot) Check() error {
	if w.Dir == "" {
		return errors.New("http-01 webroot: no directory given")
	}
	fi, err := os.Stat(w.Dir)
	if perr, ok := errors.AsType[*fs.PathError](err); ok {
		err = perr.Err // the path is in the message already
	}
	if err == nil && !fi.IsDir() {
		err = errNotDir
	}
	if err != nil {
		return fmt.Errorf("http-01 webroot %s: %w", w.Dir, err)
	}
	return nil
}

// path is where chal's token is served from.
func (w *Webroot) path(chal acme.Challenge) (string, error) {
	if w.Dir == "" {
		return "", errors.New("http-01 webroot: no directory given")
	}
	if err := CheckToken(chal.Token); err != nil {
		return "", err
	}
	return filepath.Join(w.Dir, filepath.FromSlash(PathPrefix), chal.Token), nil
}

// mkdirs makes dir and its missing parents, remembering which it made:
// 0755 whatever the umask, as the web server's workers (www-data) must
// pass through them to the token, and a root umask of 077 or 027 (a
// hardened host, a systemd unit's UMask=) would keep them out.
func (w *Webroot) mkdirs(dir string) error {
	var missing []string
	for d := dir; d != w.Dir; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		if errors.Is(err, os.ErrExist) {
			continue // made by another process meanwhile: its mode is its maker's
		}
		if err == nil && runtime.GOOS != "windows" {
			err = os.Chmod(missing[i], 0o755)
		}
		if err != nil {
			return fmt.Errorf("http-01 webroot: %w", err)
		}
	}
	w.created = append(missing, w.created...)
	return nil
}

func (w *Webroot) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.Default()
}

// CheckToken returns ErrBadToken unless tok is a non-empty base64url string
// (A-Z, a-z, 0-9, '-', '_') of at most 256 characters: what an ACME token
// is, and nothing that could name another path.
func CheckToken(tok string) error {
	if tok == "" || len(tok) > maxTokenLen {
		return fmt.Errorf("%w: %d characters", ErrBadToken, len(tok))
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: %q", ErrBadToken, tok)
		}
	}
	return nil
}
