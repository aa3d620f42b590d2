package dns01

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/solver"
	"github.com/libdns/libdns"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
)

// PersistLabel is the label prepended to a name for its dns-persist-01
// record.
const PersistLabel = "_validation-persist"

// PersistFormat selects the syntax of dns-persist-01 records. The draft is
// still moving (later drafts rename fields and hash the account URI):
// a new draft is a new constant and one case in PersistRecord.Value and
// parsePersist.
type PersistFormat string

// The formats certkeeper can write and read.
const (
	// PersistDraft00 is draft-ietf-acme-dns-persist-00 as Pebble v2.10
	// accepts it (RFC 8659 issue-value syntax):
	//	ISSUER; accounturi=ACCOUNT-URL[; policy=wildcard][; persistUntil=UNIX-SECONDS]
	PersistDraft00 PersistFormat = "draft-00"

	// DefaultPersistFormat is the format used when none is chosen.
	DefaultPersistFormat = PersistDraft00
)

// PersistRecord is one dns-persist-01 authorization: the CA (by its issuer
// domain name), the account, and what it allows.
type PersistRecord struct {
	// Name is the domain being authorized, e.g. "a.example" (the record is
	// _validation-persist.a.example).
	Name string
	// Issuer is the CA's issuer domain name, one of the challenge's
	// issuer-domain-names (the directory's caaIdentities), e.g.
	// "letsencrypt.org".
	Issuer string
	// Account is the ACME account URL.
	Account string
	// Wildcard also authorizes *.Name (policy=wildcard). The draft lets a
	// CA accept it for every subdomain, but Pebble v2.10 and Find look only
	// at the record of the name validated (and of X for *.X).
	Wildcard bool
	// Until, if not zero, is when the authorization ends (persistUntil).
	Until time.Time
	// Format is the syntax; empty means DefaultPersistFormat.
	Format PersistFormat
}

// FQDN returns the record's name, _validation-persist.NAME, without a
// trailing dot.
func (r PersistRecord) FQDN() string { return PersistLabel + "." + strings.TrimSuffix(r.Name, ".") }

// Value returns the TXT value.
func (r PersistRecord) Value() (string, error) {
	switch f := r.format(); f {
	case PersistDraft00:
		v := r.Issuer + "; accounturi=" + r.Account
		if r.Wildcard {
			v += "; policy=wildcard"
		}
		if !r.Until.IsZero() {
			v += "; persistUntil=" + strconv.FormatInt(r.Until.Unix(), 10)
		}
		return v, nil
	default:
		return "", fmt.Errorf("unknown dns-persist-01 record format %q", f)
	}
}

func (r PersistRecord) format() PersistFormat {
	if r.Format == "" {
		return DefaultPersistFormat
	}
	return r.Format
}

// String returns the record in zone-file syntax, as an operator pastes it
// into a DNS host's interface or a zone file.
func (r PersistRecord) String() string {
	v, err := r.Value()
	if err != nil {
		return "; " + err.Error()
	}
	return fmt.Sprintf("%s. 3600 IN TXT %q", r.FQDN(), v)
}

// parsePersist parses one TXT value in format f. It is lenient about
// spaces and case of tags, as RFC 8659 is.
func parsePersist(f PersistFormat, value string) (PersistRecord, error) {
	if f != PersistDraft00 {
		return PersistRecord{}, fmt.Errorf("unknown dns-persist-01 record format %q", f)
	}
	parts := strings.Split(value, ";")
	rec := PersistRecord{Issuer: strings.TrimSpace(parts[0]), Format: f}
	for _, p := range parts[1:] {
		tag, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return rec, fmt.Errorf("malformed parameter %q", p)
		}
		val = strings.TrimSpace(val)
		switch strings.ToLower(strings.TrimSpace(tag)) {
		case "accounturi":
			rec.Account = val
		case "policy":
			rec.Wildcard = strings.EqualFold(val, "wildcard")
		case "persistuntil":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return rec, fmt.Errorf("malformed persistUntil %q", val)
			}
			rec.Until = time.Unix(n, 0)
		}
	}
	return rec, nil
}

// Persist answers dns-persist-01 challenges from a record set once (by
// "certkeeper dns-persist-record", or by hand): nothing changes in DNS per
// order. It implements solver.Chooser: an issuer uses dns-persist-01 only
// where a record for this CA and account is in place, and another
// challenge elsewhere.
type Persist struct {
	// Resolver is where the record is looked up: the zone's authoritative
	// nameservers, found through these resolvers.
	Resolver Resolver

	// Format is the record syntax. Empty means DefaultPersistFormat.
	Format PersistFormat

	// Provider, if set, is used by Set to write records.
	Provider Provider
}

// Present does nothing: the record is already in place (Choose checked).
func (p *Persist) Present(context.Context, acme.Challenge) error { return nil }

// CleanUp does nothing: the record stays, for the next order.
func (p *Persist) CleanUp(context.Context, acme.Challenge) error { return nil }

// Choose reports whether a dns-persist-01 record for one of the challenge's
// issuer domain names and authz's account is served for the challenge's
// name, allowing a wildcard where authz needs one and not expired. When
// none is, the error is a *PersistError saying what is there.
func (p *Persist) Choose(ctx context.Context, chal acme.Challenge, authz solver.Authorization) (bool, error) {
	name := chal.Identifier.Value
	if authz.Wildcard {
		name = "*." + name
	}
	if err := p.Check(ctx, name, chal.IssuerDomainNames, authz.Account); err != nil {
		return false, err
	}
	return true, nil
}

// Check reports whether a dns-persist-01 record usable for name is
// served: one naming one of issuers (the CA's issuer domain names) and
// account (its URL), not expired, with policy=wildcard when name is a
// wildcard (*.a.example, whose record is at a.example's). It is Choose
// before an order, which an issuance whose one challenge is
// dns-persist-01 asks so that a missing record fails with nothing
// ordered. The error is a *PersistError when no such record is served.
func (p *Persist) Check(ctx context.Context, name string, issuers []string, account string) error {
	base, wildcard := strings.CutPrefix(name, "*.")
	rec, err := p.Find(ctx, base, issuers, account)
	if err != nil {
		return err
	}
	if wildcard && !rec.Wildcard {
		return &PersistError{Record: rec.FQDN(), Account: account, Issuers: issuers, Found: true, NoWildcard: true}
	}
	return nil
}

// ErrNoPersistRecord is returned (wrapped, in a *PersistError) by Find
// when no usable record is served.
var ErrNoPersistRecord = errors.New("no dns-persist-01 record for this CA and account")

// PersistError says why no dns-persist-01 record served for a name can be
// used: what was looked up and what is there. It wraps
// ErrNoPersistRecord.
type PersistError struct {
	Record  string   // _validation-persist.NAME
	Account string   // the account URL a record must name
	Issuers []string // the CA's issuer domain names, one of which a record must name
	Values  int      // how many TXT values the name has
	// Others are the account URLs of records for this CA that name
	// another account (a record set with another storage's account).
	Others []string
	// Expired counts the records for this CA and account past their
	// persistUntil.
	Expired int
	// Found is set when a record for this CA and account is there;
	// NoWildcard then says it lacks policy=wildcard, which a wildcard
	// name needs.
	Found, NoWildcard bool
}

func (e *PersistError) Error() string {
	if e.NoWildcard {
		return fmt.Sprintf("the record for this CA and account at %s lacks policy=wildcard, which *.%s needs: set it again with PersistRecord.Wildcard (policy=wildcard)",
			e.Record, strings.TrimPrefix(e.Record, PersistLabel+"."))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v at %s", ErrNoPersistRecord, e.Record)
	switch e.Values {
	case 0:
		b.WriteString(": it has no TXT value")
	case 1:
		b.WriteString(": it has 1 TXT value")
	default:
		fmt.Fprintf(&b, ": it has %d TXT values", e.Values)
	}
	switch {
	case len(e.Others) > 0:
		fmt.Fprintf(&b, ", for this CA (%s) but the account %s, not this account %s: set a record for this account (Persist.Set), or issue with the account the record names",
			strings.Join(e.Issuers, ", "), strings.Join(e.Others, ", "), e.Account)
	case e.Expired > 0:
		fmt.Fprintf(&b, ", for this CA and account but past its persistUntil: set it again with a later PersistRecord.Until")
	case e.Values > 0:
		fmt.Fprintf(&b, ", none for this CA (issuer domain name %s) and account %s: set one (Persist.Set)", strings.Join(e.Issuers, ", "), e.Account)
	default:
		fmt.Fprintf(&b, ": set one for this CA (%s) and account %s (Persist.Set)", strings.Join(e.Issuers, ", "), e.Account)
	}
	return b.String()
}

func (e *PersistError) Unwrap() error { return ErrNoPersistRecord }

// Find returns the dns-persist-01 record served for name that names one
// of issuers and account and has not expired, one with policy=wildcard
// when there are several. When there is none, the error is a
// *PersistError.
func (p *Persist) Find(ctx context.Context, name string, issuers []string, account string) (PersistRecord, error) {
	fqdn := PersistLabel + "." + strings.TrimSuffix(name, ".")
	vals, err := p.Resolver.lookupTXT(ctx, fqdn)
	if err != nil {
		return PersistRecord{}, fmt.Errorf("looking up %s: %w", fqdn, err)
	}
	f := p.Format
	if f == "" {
		f = DefaultPersistFormat
	}
	perr := &PersistError{Record: fqdn, Account: account, Issuers: issuers, Values: len(vals)}
	var found PersistRecord
	for _, v := range vals {
		rec, err := parsePersist(f, v)
		if err != nil || !slices.Contains(issuers, rec.Issuer) {
			continue
		}
		if rec.Account != account {
			if !slices.Contains(perr.Others, rec.Account) {
				perr.Others = append(perr.Others, rec.Account)
			}
			continue
		}
		if !rec.Until.IsZero() && time.Now().After(rec.Until) {
			perr.Expired++
			continue
		}
		if !perr.Found || rec.Wildcard && !found.Wildcard {
			found, perr.Found = rec, true
		}
	}
	if !perr.Found {
		return PersistRecord{}, perr
	}
	found.Name = strings.TrimSuffix(name, ".")
	return found, nil
}

// Set writes rec through Provider into the zone that holds its name,
// then removes the values for the same CA and account that the name's
// authoritative nameservers served before (another policy or end): a TXT
// name holds several values, and an earlier wider or longer authorization
// would otherwise stay in force (trial 19). The new value is added first,
// so the name is never without one. Other values on the name (other CAs'
// and accounts' records) stay.
func (p *Persist) Set(ctx context.Context, rec PersistRecord) error {
	if p.Provider == nil {
		return errors.New("dns01: Persist.Provider is nil: set a DNS provider, or set the record by hand")
	}
	if rec.Format == "" {
		rec.Format = p.Format
	}
	value, err := rec.Value()
	if err != nil {
		return err
	}
	fqdn := dns.Fqdn(rec.FQDN())
	target, err := p.Resolver.target(ctx, fqdn)
	if err != nil {
		return fmt.Errorf("looking up CNAME of %s: %w", fqdn, err)
	}
	zone, err := p.Resolver.zone(ctx, target)
	if err != nil {
		return err
	}
	r := libdns.TXT{Name: libdns.RelativeName(target, zone), TTL: time.Hour, Text: value}
	if _, err := p.Provider.AppendRecords(ctx, zone, []libdns.Record{r}); err != nil {
		return fmt.Errorf("setting TXT record %s in zone %s: %w", strings.TrimSuffix(target, "."), zone, err)
	}
	vals, err := p.Resolver.lookupTXT(ctx, target)
	if err != nil {
		return fmt.Errorf("TXT record %s is set, but its earlier values for this account could not be looked up to remove: %w", strings.TrimSuffix(target, "."), err)
	}
	var stale []libdns.Record
	for _, v := range vals {
		if old, err := parsePersist(rec.format(), v); err == nil && v != value && old.Issuer == rec.Issuer && old.Account == rec.Account {
			stale = append(stale, libdns.TXT{Name: r.Name, TTL: r.TTL, Text: v})
		}
	}
	if len(stale) == 0 {
		return nil
	}
	if _, err := p.Provider.DeleteRecords(ctx, zone, stale); err != nil {
		return fmt.Errorf("TXT record %s is set, but removing its %d earlier values for this account: %w", strings.TrimSuffix(target, "."), len(stale), err)
	}
	return nil
}
