package certserver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
)

// FileError is TLSConfig's failure to use one of its files.
type FileError struct {
	// What is "certificate" (the certificate and key pair) or
	// "client CA" (the client CA file).
	What string
	// File is the file at fault (for a key pair, the certificate's).
	File string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("the API's %s %s: %v", e.What, e.File, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// ErrNoPEM means a client CA file holds no PEM certificate.
var ErrNoPEM = errors.New("no PEM certificates found")

// TLSConfig is the TLS configuration of an API served over HTTPS with the
// certificate and key in certFile and keyFile (PEM): TLS 1.2 or later,
// HTTP/2 offered. With clientCAFile (PEM certificates) a client may
// present a certificate those CAs issued, which the Handler then takes
// as authentication; without one it is optional still
// (tls.VerifyClientCertIfGiven), so bearer tokens keep working beside
// it. Its errors are *FileError.
func TLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil && cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	if err != nil {
		return nil, &FileError{What: "certificate", File: certFile, Err: err}
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if clientCAFile != "" {
		data, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, &FileError{What: "client CA", File: clientCAFile, Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, &FileError{What: "client CA", File: clientCAFile, Err: ErrNoPEM}
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// TLSFiles is the TLS configuration of an API served over HTTPS, read
// from its files (as TLSConfig reads them) and read again by Reload, as a
// server does on SIGHUP: a certificate replaced before it expires takes
// neither a restart nor an upgrade, and connections already open keep
// the one they began with. The zero value is not usable: make one with
// LoadTLSFiles.
type TLSFiles struct {
	certFile, keyFile, clientCAFile string
	current                         atomic.Pointer[tls.Config]
}

// LoadTLSFiles reads certFile, keyFile and clientCAFile (optional) as
// TLSConfig does; its errors are *FileError.
func LoadTLSFiles(certFile, keyFile, clientCAFile string) (*TLSFiles, error) {
	f := &TLSFiles{certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload reads the files again and reports whether they hold another
// certificate than before. A file that cannot be used (gone, not PEM, a
// key that does not match the certificate) is an error, a *FileError,
// and leaves the configuration as it was: the new certificate and its
// key may be written one after the other. A nil *TLSFiles (an API over
// plain HTTP) has nothing to read.
func (f *TLSFiles) Reload() (changed bool, err error) {
	if f == nil {
		return false, nil
	}
	tc, err := TLSConfig(f.certFile, f.keyFile, f.clientCAFile)
	if err != nil {
		return false, err
	}
	old := f.current.Swap(tc)
	return old == nil || !bytes.Equal(old.Certificates[0].Certificate[0], tc.Certificates[0].Certificate[0]), nil
}

// Leaf is the certificate the files held at the last Reload.
func (f *TLSFiles) Leaf() *x509.Certificate { return f.current.Load().Certificates[0].Leaf }

// Config is a TLS configuration whose every new connection takes what the
// files held at the last Reload; nil for a nil *TLSFiles.
func (f *TLSFiles) Config() *tls.Config {
	if f == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return f.current.Load(), nil },
	}
}

// ReloadTLS is f's Reload as a server does it on SIGHUP, logging to the
// Handler's Logger a certificate replaced (with its expiry) or files that
// cannot be used (the API keeps serving the certificate it had). A nil f
// (an API over plain HTTP) does nothing.
func (h *Handler) ReloadTLS(f *TLSFiles) {
	if changed, err := f.Reload(); err != nil {
		h.logger().Error("reading the API's certificate files again failed; it serves the certificate it had", slog.Any("err", err))
	} else if changed {
		h.logger().Info("the API's certificate files were read again: new connections get the new certificate",
			slog.String("file", f.certFile), slog.Time("not_after", f.Leaf().NotAfter))
	}
}

// ReloadTokens reads the token file again (LoadTokens) and replaces the
// accepted tokens with it (SetTokens), e.g. on SIGHUP, so that a token
// removed from the file is refused at once. A file that cannot be used
// (gone, unparsable, readable by others) is an error and leaves the
// tokens as they were.
func (h *Handler) ReloadTokens(file string) error {
	tokens, err := LoadTokens(file)
	if err != nil {
		return err
	}
	return h.SetTokens(tokens)
}

// ReloadTokenFile is ReloadTokens as a server does it on SIGHUP, logging
// to the Handler's Logger what happened: started is the token file the
// server started with ("" means none: nothing is reloaded, and a file
// named now takes a restart), next the one its configuration names now
// ("" means the setting was removed: the tokens of started are read
// again, since dropping authentication takes a restart). A file that
// cannot be used leaves the tokens as they were.
func (h *Handler) ReloadTokenFile(started, next string) {
	logger := h.logger()
	if started == "" {
		if next != "" {
			logger.Error("token_file was added: it takes a restart (this server started without tokens)", slog.String("file", next))
		}
		return
	}
	if next == "" {
		logger.Error("token_file was removed: keeping the tokens read before; stopping authentication takes a restart", slog.String("file", started))
		next = started
	}
	if err := h.ReloadTokens(next); err != nil {
		logger.Error("reloading the token file failed; keeping the tokens read before", slog.Any("err", err))
		return
	}
	logger.Info("token file reloaded", slog.String("file", next), slog.Int("tokens", h.tokens.Load().count()))
}
