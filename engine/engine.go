package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/storage"
	"golang.org/x/time/rate"
)

// Settings are what a Manager is built from. The zero value builds a
// Manager that obtains ECDSA certificates from Let's Encrypt with
// tls-alpn-01 or http-01 (whichever the front end answers: see TLSALPN01
// and HTTP01).
type Settings struct {
	// CAs is the fallback chain, tried in order: names CAURL resolves
	// ("letsencrypt", "staging"), "local" (certkeeper's own CA) or ACME
	// directory URLs. Empty means letsencrypt.
	CAs []string
	// Account is what every ACME CA of the chains is used with.
	Account Account
	// KeyType is the certificates' key type; zero means the Manager's
	// default.
	KeyType issuer.KeyType
	// Challenges are the challenge types tried, in order ("tls-alpn-01",
	// "http-01", "dns-01", "dns-persist-01"). Empty means tls-alpn-01 if
	// TLSALPN01, http-01 if HTTP01, and dns-01 if DNS01 is set.
	Challenges []string
	// TLSALPN01 and HTTP01 report whether the front end answers these
	// challenges (the Manager's TLSConfig and HTTPHandler are in place).
	TLSALPN01, HTTP01 bool
	// DNS01 sets dns-01 records; nil means no dns-01. Its Logger is set
	// to Logger.
	DNS01 *dns01.Solver
	// DNSResolver is where dns-persist-01 records are looked up: they are
	// tried first wherever dns-01 or dns-persist-01 is a challenge.
	DNSResolver dns01.Resolver
	// Rules give names matching a pattern their own CA chain, challenges,
	// profile or key type.
	Rules []Rule
	// Wildcards are the zones ("*.a.example") served from one wildcard
	// certificate each; they need dns-01.
	Wildcards []string
	// RSAFallback also obtains RSA certificates, for clients that cannot
	// use ECDSA.
	RSAFallback bool
	// CertFiles are certificates made elsewhere, served for the names
	// they cover; CertFileCheck is how often their files are checked for
	// changes (zero: the Manager's default).
	CertFiles     []certkeeper.CertFile
	CertFileCheck time.Duration
	// OrderLimit new orders per OrderWindow per CA account are placed, for
	// every node sharing the storage; zero means only the CA's own limits.
	OrderLimit  int
	OrderWindow time.Duration
	// ClientLimit new names per ClientWindow may start an on-demand
	// issuance from one client address (at once, then refilled over the
	// window); zero means the Manager's default (Manager.ClientLimit).
	ClientLimit  int
	ClientWindow time.Duration
	// CacheSize bounds the certificates held in memory
	// (Manager.CacheSize); zero means the Manager's default, 10,000.
	CacheSize int
	// UserAgent is appended to the User-Agent of the ACME requests
	// ("proxy", "server"); it replaces Account.UserAgent.
	UserAgent string
}

// Rule is Settings for the names matching Pattern: each field that is set
// replaces the Settings' own.
type Rule struct {
	// Pattern is an exact name, "*.a.example" or "re:REGEXP", as in
	// policy.ParseAllowlist.
	Pattern    string
	CAs        []string
	Challenges []string
	Profile    string
	KeyType    issuer.KeyType
}

// Errors of Manager, wrapped in a *SettingError.
var (
	// ErrUnknownChallenge: a challenge type that is not tls-alpn-01,
	// http-01, dns-01 or dns-persist-01.
	ErrUnknownChallenge = errors.New("unknown challenge type: use tls-alpn-01, http-01, dns-01 or dns-persist-01")
	// ErrNotAnswered: a challenge the front end does not answer
	// (Settings.TLSALPN01, HTTP01 or DNS01 is not set).
	ErrNotAnswered = errors.New("challenge not answered here")
	// ErrWildcardNeedsDNS01: wildcards given without dns-01 or
	// dns-persist-01 among the challenges.
	ErrWildcardNeedsDNS01 = errors.New("wildcard certificates are validated only through DNS: dns-01 or dns-persist-01 is needed")
	// ErrNotWildcard: a wildcard that is not *.ZONE.
	ErrNotWildcard = errors.New("want *.ZONE, e.g. *.a.example")
)

// SettingError is a mistake in one of the Settings, or in one of a
// Rule's (Rule is its index in Settings.Rules, -1 for the Settings' own).
type SettingError struct {
	Rule    int
	Pattern string // the rule's pattern
	Field   string // "Challenges", "Wildcards", "CAs", "Pattern"
	Value   string
	Err     error
}

func (e *SettingError) Error() string {
	msg := fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err)
	if e.Rule >= 0 {
		msg = fmt.Sprintf("Rules[%d] (%s): %s", e.Rule, e.Pattern, msg)
	}
	return msg
}

func (e *SettingError) Unwrap() error { return e.Err }

// CheckDNS asks the dns-01 provider, for each of Wildcards, whether it may
// set the records of that zone (dns01.Solver.Check), changing nothing, so
// that a key the DNS server refuses, or a zone it does not hold, is found
// when the front end starts, not at the first handshake for a name under
// it. It asks the same for each of managed (names obtained at start, "a,b"
// for one certificate) that only DNS validates: a wildcard, or any name
// when dns-01 is the only challenge tried (a DNS trial's server with a
// wrong key started, then placed an order at each retry). A server that
// gives no answer (before ctx ends) is no error here, as it may come up
// after the front end: that is logged at warn on logger. The error is a
// *SettingError of Wildcards or Managed.
func (s *Settings) CheckDNS(ctx context.Context, logger *slog.Logger, managed ...string) error {
	if s.DNS01 == nil {
		return nil
	}
	type check struct{ field, name string }
	var checks []check
	for _, w := range s.Wildcards {
		checks = append(checks, check{"Wildcards", w})
	}
	dnsOnly := !slices.ContainsFunc(s.tried(s.Challenges), func(c string) bool { return c != acmeca.DNS01 })
	for _, spec := range managed {
		for n := range strings.SplitSeq(spec, ",") {
			if strings.HasPrefix(n, "*.") || dnsOnly {
				checks = append(checks, check{"Managed", n})
			}
		}
	}
	for _, c := range checks {
		err := s.DNS01.Check(ctx, c.name)
		var ze *dns01.ZoneError
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) || errors.As(err, &ze) && ze.NoAnswer || errors.Is(err, context.DeadlineExceeded):
			logger.Warn("the DNS provider gave no answer at start; certificates validated through it wait for it",
				slog.String("name", c.name), slog.Any("err", err))
		default:
			return &SettingError{Rule: -1, Field: c.field, Value: c.name, Err: err}
		}
	}
	return nil
}

// CheckProfiles asks each ACME CA of m (its Issuers and its Rules') that
// is given a Profile which profiles it offers, so that a profile the CA
// does not offer is found when the front end starts, not at the first
// order (which it would fail, as every one after it). A CA that gives no
// answer before ctx ends is no error here: that is logged at warn on
// logger, and the profile is checked at its first order. The error is a
// *SettingError of Profile (Rule: the index in m.Rules, or -1).
func CheckProfiles(ctx context.Context, m *certkeeper.Manager, logger *slog.Logger) error {
	check := func(rule int, pattern string, issuers []issuer.Issuer) error {
		for _, iss := range issuers {
			a, ok := iss.(*acmeca.Issuer)
			if !ok || a.Profile == "" {
				continue
			}
			profiles, err := a.Profiles(ctx)
			if err != nil {
				logger.Warn("the CA gave no answer at start; its profile is checked at the first order",
					slog.String("ca", a.DirectoryURL), slog.String("profile", a.Profile), slog.Any("err", err))
				continue
			}
			if !slices.Contains(profiles, a.Profile) {
				offered := strings.Join(profiles, ", ")
				if offered == "" {
					offered = "none"
				}
				return &SettingError{Rule: rule, Pattern: pattern, Field: "Profile", Value: a.Profile,
					Err: fmt.Errorf("%w %q: the CA at %s offers: %s", acmeca.ErrUnknownProfile, a.Profile, a.DirectoryURL, offered)}
			}
		}
		return nil
	}
	if err := check(-1, "", m.Issuers); err != nil {
		return err
	}
	for i, r := range m.Rules {
		if err := check(i, r.Pattern, r.Issuers); err != nil {
			return err
		}
	}
	return nil
}

// Manager builds the Manager of s with storage st, without its Policy
// (the caller sets it) or OnEvent. Its error is a *SettingError.
func (s *Settings) Manager(st storage.Storage) (*certkeeper.Manager, error) {
	issuers, err := s.issuers(st, s.CAs, s.Challenges, s.Account)
	if err != nil {
		return nil, &SettingError{Rule: -1, Field: err.Field, Value: err.Value, Err: err.Err}
	}
	var rules []certkeeper.NameRule
	for i, r := range s.Rules {
		if _, err := policy.ParseAllowlist(r.Pattern); err != nil || r.Pattern == "" {
			if err == nil {
				err = errors.New("empty pattern")
			}
			return nil, &SettingError{Rule: i, Pattern: r.Pattern, Field: "Pattern", Value: r.Pattern, Err: err}
		}
		cas, challenges, account := s.CAs, s.Challenges, s.Account
		if len(r.CAs) > 0 {
			cas = r.CAs
		}
		if len(r.Challenges) > 0 {
			challenges = r.Challenges
		}
		if r.Profile != "" {
			account.Profile = r.Profile
		}
		ruleIssuers, err := s.issuers(st, cas, challenges, account)
		if err != nil {
			return nil, &SettingError{Rule: i, Pattern: r.Pattern, Field: err.Field, Value: err.Value, Err: err.Err}
		}
		rules = append(rules, certkeeper.NameRule{Pattern: r.Pattern, Issuers: ruleIssuers, KeyType: r.KeyType})
	}
	m := &certkeeper.Manager{
		Issuers:       issuers,
		Rules:         rules,
		Wildcards:     s.Wildcards,
		RSAFallback:   s.RSAFallback,
		Storage:       st,
		Email:         s.Account.Email,
		KeyType:       s.KeyType,
		CertFiles:     s.CertFiles,
		CertFileCheck: s.CertFileCheck,
		CacheSize:     s.CacheSize,
		Logger:        s.Account.Logger,
		Cluster:       certkeeper.Cluster{OrderLimit: s.OrderLimit, OrderWindow: s.OrderWindow},
	}
	if s.ClientLimit > 0 {
		m.ClientLimit = &policy.IPLimiter{Rate: rate.Limit(float64(s.ClientLimit) / s.ClientWindow.Seconds()), Burst: s.ClientLimit}
	}
	withManagerSolvers(m, issuers)
	for _, r := range rules {
		withManagerSolvers(m, r.Issuers)
	}
	return m, nil
}

// tried is the challenge types tried, in order, for challenges (the
// Settings' or a rule's): those given, else what the front end answers
// (tls-alpn-01, http-01) and dns-01 with DNS01.
func (s *Settings) tried(challenges []string) []string {
	if len(challenges) > 0 {
		return challenges
	}
	var order []string
	if s.TLSALPN01 {
		order = append(order, acmeca.TLSALPN01)
	}
	if s.HTTP01 {
		order = append(order, acmeca.HTTP01)
	}
	if s.DNS01 != nil {
		order = append(order, acmeca.DNS01)
	}
	return order
}

// issuers builds the fallback chain of cas, each trying challenges.
func (s *Settings) issuers(st storage.Storage, cas, challenges []string, account Account) ([]issuer.Issuer, *SettingError) {
	if len(cas) == 0 {
		cas = []string{"letsencrypt"}
	}
	order := s.tried(challenges)
	dnsSolvers, err := s.dnsSolvers(order)
	if err != nil {
		return nil, err
	}
	if dnsSolvers != nil {
		order = append([]string{acmeca.DNSPersist01}, order...)
	}
	account.UserAgent = s.UserAgent
	var out []issuer.Issuer
	for _, ca := range cas {
		if err := CheckCA(ca); err != nil {
			return nil, &SettingError{Field: "CAs", Value: ca, Err: err}
		}
		iss := account.Issuer(ca, st)
		if a, ok := iss.(*acmeca.Issuer); ok {
			a.ChallengeOrder, a.Solvers = order, maps.Clone(dnsSolvers)
		}
		out = append(out, iss)
	}
	return out, nil
}

// dnsSolvers checks the challenge list against what the front end
// answers and builds the DNS solvers it asks for (nil when it names none):
// dns-01 through DNS01, and dns-persist-01 wherever its record is in
// place. The Manager adds its own tls-alpn-01 and http-01 solvers
// (withManagerSolvers).
func (s *Settings) dnsSolvers(order []string) (map[string]solver.Solver, *SettingError) {
	var solvers map[string]solver.Solver
	for _, ch := range order {
		switch ch {
		case acmeca.TLSALPN01, acmeca.HTTP01:
			if ch == acmeca.TLSALPN01 && !s.TLSALPN01 || ch == acmeca.HTTP01 && !s.HTTP01 {
				return nil, &SettingError{Field: "Challenges", Value: ch, Err: ErrNotAnswered}
			}
		case acmeca.DNS01:
			if s.DNS01 == nil {
				return nil, &SettingError{Field: "Challenges", Value: ch, Err: ErrNotAnswered}
			}
			s.DNS01.Logger = s.Account.Logger
			if solvers == nil {
				solvers = map[string]solver.Solver{}
			}
			solvers[acmeca.DNS01] = s.DNS01
			solvers[acmeca.DNSPersist01] = &dns01.Persist{Resolver: s.DNSResolver}
		case acmeca.DNSPersist01:
			if solvers == nil {
				solvers = map[string]solver.Solver{}
			}
			solvers[acmeca.DNSPersist01] = &dns01.Persist{Resolver: s.DNSResolver}
		default:
			return nil, &SettingError{Field: "Challenges", Value: ch, Err: ErrUnknownChallenge}
		}
	}
	for _, w := range s.Wildcards { // what was typed first, then what it needs
		if n, err := (hostname.Normalizer{AllowWildcard: true}).Normalize(w); err != nil || !strings.HasPrefix(n, "*.") {
			return nil, &SettingError{Field: "Wildcards", Value: w, Err: ErrNotWildcard}
		}
	}
	if len(s.Wildcards) > 0 && solvers[acmeca.DNS01] == nil && solvers[acmeca.DNSPersist01] == nil {
		return nil, &SettingError{Field: "Wildcards", Value: s.Wildcards[0], Err: ErrWildcardNeedsDNS01}
	}
	return solvers, nil
}

// withManagerSolvers gives ACME issuers that have DNS solvers the
// Manager's tls-alpn-01 and http-01 solvers too (an issuer with no
// solvers gets them from the Manager by itself).
func withManagerSolvers(m *certkeeper.Manager, issuers []issuer.Issuer) {
	for _, iss := range issuers {
		if a, ok := iss.(*acmeca.Issuer); ok && a.Solvers != nil {
			for typ, s := range m.Solvers() {
				if a.Solvers[typ] == nil {
					a.Solvers[typ] = s
				}
			}
		}
	}
}

// UsesDNS01 reports whether an issuance trying challenges uses dns-01:
// when they name it or, naming none, when a DNS provider is set
// (dnsProvider). Settings' default challenges (dns-01 with DNS01) and a
// OneShot's (OneShotChallenge) both follow it, so that a DNS provider
// means dns-01 for a Manager and a one-shot issuance alike (trial 19).
func UsesDNS01(challenges []string, dnsProvider bool) bool {
	return slices.Contains(challenges, acmeca.DNS01) || len(challenges) == 0 && dnsProvider
}

// ValidatesWildcards reports whether an engine with these challenges
// (none: the defaults), with a DNS provider or not, and this CA chain
// (none: Let's Encrypt) can obtain a wildcard certificate: through dns-01
// or dns-persist-01, or from the local CA, which validates nothing.
func ValidatesWildcards(challenges []string, dnsProvider bool, cas []string) bool {
	return slices.ContainsFunc(cas, IsLocal) || UsesDNS01(challenges, dnsProvider) || slices.Contains(challenges, acmeca.DNSPersist01)
}

// OneShotChallenge is a OneShot's challenge when none is named: dns-01
// with a DNS provider (UsesDNS01), else http-01.
func OneShotChallenge(dnsProvider bool) string {
	if UsesDNS01(nil, dnsProvider) {
		return acmeca.DNS01
	}
	return acmeca.HTTP01
}

// Challenges are the challenge types Settings.Challenges takes.
var Challenges = []string{acmeca.TLSALPN01, acmeca.HTTP01, acmeca.DNS01, acmeca.DNSPersist01}

// CheckChallenge checks a challenge type's name, suggesting the nearest
// for a typo.
func CheckChallenge(v string) error {
	if slices.Contains(Challenges, v) {
		return nil
	}
	msg := fmt.Sprintf("%q: use tls-alpn-01, http-01, dns-01 or dns-persist-01", v)
	if s := cmdline.Suggest(v, Challenges); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	return errors.New(msg)
}

// ParseOrderLimit parses an order limit N/DURATION ("10/1m": at most 10
// new orders a minute), for Settings.OrderLimit and OrderWindow; empty
// means no limit (0, 0).
func ParseOrderLimit(v string) (int, time.Duration, error) {
	if v == "" {
		return 0, 0, nil
	}
	ns, ds, ok := strings.Cut(v, "/")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n <= 0 {
		return 0, 0, fmt.Errorf("%q: want N/DURATION, e.g. 10/1m or 300/3h", v)
	}
	d, err := time.ParseDuration(ds)
	if err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("%q: want N/DURATION, e.g. 10/1m or 300/3h", v)
	}
	return n, d, nil
}
