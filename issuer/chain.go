package issuer

import (
	"context"
	"errors"
	"fmt"
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
}

// Issue asks each issuer in turn until one issues. It stops early when
// ctx is done. If every issuer fails, the error joins theirs (one error
// when there is one issuer), so errors.As finds each *Error.
func (c *Chain) Issue(ctx context.Context, req Request) (*Certificate, error) {
	if len(c.Issuers) == 0 {
		return nil, errors.New("no issuer configured: give at least one")
	}
	var errs []error
	for _, iss := range c.Issuers {
		if c.Before != nil {
			if err := c.Before(ctx, iss, req); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", iss.ID(), err))
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
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}
