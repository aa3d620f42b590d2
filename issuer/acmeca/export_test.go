package acmeca

import "time"

// SetRecheckEvery makes iss compare its account with storage every d
// (accountRecheck) rather than every minute.
func SetRecheckEvery(iss *Issuer, d time.Duration) { iss.recheckEvery = d }

// SetRenewalInfoBudget replaces renewalInfoBudget for iss.
func SetRenewalInfoBudget(iss *Issuer, d time.Duration) { iss.ariBudget = d }
