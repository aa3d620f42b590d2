// Package limit holds the Manager's own limiters: FailureBackoff, the
// negative cache that keeps a name whose issuance failed from being
// reordered on every handshake, and CALimiter, the budget of new orders
// per CA account. Both are sized to the CA's published limits (Let's
// Encrypt's by default: 5 failed authorizations per name per hour, 300 new
// orders per account per 3 hours) and hand their state (State, Restore)
// to the Manager, which keeps it in storage so a restart or a crash loop
// cannot spend the CA's limits again.
//
// The package is internal because nothing but the Manager configures
// these limiters; what callers see of them is an error: a
// *RateLimitError matches issuer.ErrRateLimited, and the Manager answers a
// name still in its failure backoff with ErrFailedRecently (not the
// policy's ErrDenied: it is no policy decision). Per-client
// limits, which an operator sets, stay in package policy (IPLimiter).
package limit
