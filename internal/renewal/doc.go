// Package renewal decides when certificates are renewed and runs renewals
// at those times.
//
// It exists because renewal timing is easy to get subtly wrong, and wrong
// timing is an outage: a fixed "renew 30 days before expiry" breaks with
// 45-day (Let's Encrypt tlsserver), 6-day (shortlived) and 60-second (test)
// certificates; a retry schedule tuned for 90-day certificates lets a
// 60-second one lapse between two attempts; and a goroutine per certificate
// does not scale to hundreds of thousands of names. Every rule here is
// therefore a fraction of the certificate's own lifetime, never a fixed
// number of days, and gives sensible times from 60 seconds to 398 days.
//
// The package has three parts:
//
//   - [Due], [NextARICheck] and [FirstARICheck]: when a certificate should
//     be renewed, from the CA's ACME Renewal Information window (RFC 9773)
//     when there is one, else from its lifetime, as Let's Encrypt's
//     integration guide asks; and when that window should be fetched (at
//     least twice a day, until the certificate is due).
//   - [Backoff]: when to try again after a failed renewal, following Let's
//     Encrypt's guidance (about 1 min, 10 min, 100 min, then daily) but
//     scaled down so a short-lived certificate is retried before it lapses.
//   - [Scheduler]: one timer heap per Manager that calls a function when a
//     key's time comes, with a bound on how many calls run at once.
//
// The randomness in the timing functions spreads a fleet's renewals, so that
// certificates issued together are not renewed together and no client hits
// the CA on the hour (integration guide: "run scheduled jobs at a random
// second").
//
// The package does not issue, store, lock or fetch anything and has no
// notion of names or CAs: the Manager in the root package does that work and
// asks this package only "when". Time is read from the caller (the now
// arguments) or from the time package, so tests drive it with
// testing/synctest rather than a clock interface.
package renewal
