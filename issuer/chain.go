package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Chain is a fallback chain of issuers: Issue asks each in order and
// returns the first certificate issued. A chain of one issuer behaves as
// that issuer. The hooks let a caller spend a budget before an order and
// report failures; both may be nil.
//
// A Chain must not change while Issue runs.
type Chain struct {
	// Issuers are asked in this order.
	Issuers []Issuer

	// Before, if not nil, is called before iss is asked. An error skips
	// iss: it is kept for the joined error and the next issuer is tried.
	// The Manager spends its order budget here.
	Before func(ctx context.Context, iss Issuer, req Request) error

	// Failed, if not nil, is called after iss failed with err (took is how
	// long it tried), before the next issuer is asked. The Manager reports
	// the failure and pauses a rate-limited CA's budget here.
	Failed func(ctx context.Context, iss Issuer, err error, took time.Duration)

	// Logger, if not nil, is told when an issuer fails or is skipped and
	// another is left to try ("issuer failed; trying the next"), and when
	// the chain is exhausted: every issuer failed (the error Issue
	// returns), unless CallerLogs. Nil logs nothing.
	Logger *slog.Logger

	// CallerLogs says that the caller logs the error Issue returns, with
	// what happens next (the Manager: when it tries again), so that
	// Logger is not told of it too: one failure, one log line.
	CallerLogs bool
}

// Issue asks each issuer in turn until one issues. It stops early when
// ctx is done. If every issuer fails, the error joins theirs (one error
// when there is one issuer), so errors.As finds each *Error.
func (c *Chain) Issue(ctx context.Context, req Request) (*Certificate, error) {
	if len(c.Issuers) == 0 {
		return nil, errors.New("no issuer configured: give at least one")
	}
	var errs []error
	for i, iss := range c.Issuers {
		next := i+1 < len(c.Issuers) && ctx.Err() == nil
		if c.Before != nil {
			if err := c.Before(ctx, iss, req); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", iss.ID(), err))
				if next {
					c.log(slog.LevelWarn, "issuer skipped; trying the next", req, iss, err)
				}
				continue
			}
		}
		t0 := time.Now()
		cert, err := iss.Issue(ctx, req)
		if err == nil {
			return cert, nil
		}
		if c.Failed != nil {
			c.Failed(ctx, iss, err, time.Since(t0))
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
		if i+1 < len(c.Issuers) {
			c.log(slog.LevelWarn, "issuer failed; trying the next", req, iss, err)
		}
	}
	err := errs[0]
	if len(errs) > 1 {
		err = errors.Join(errs...)
	}
	if ctx.Err() == nil && !c.CallerLogs {
		c.log(slog.LevelError, "issuance failed; no issuer left to try", req, nil, err)
	}
	return nil, err
}

// log tells c.Logger, if any, about req's issuance; iss is the issuer
// concerned (nil: the whole chain).
func (c *Chain) log(level slog.Level, msg string, req Request, iss Issuer, err error) {
	if c.Logger == nil {
		return
	}
	attrs := []slog.Attr{slog.Any("names", req.Names)}
	if iss != nil {
		attrs = append(attrs, slog.String("issuer", iss.ID()))
	} else {
		attrs = append(attrs, slog.Int("issuers", len(c.Issuers)))
	}
	attrs = append(attrs, slog.Any("err", err))
	c.Logger.LogAttrs(context.Background(), level, msg, attrs...)
}
