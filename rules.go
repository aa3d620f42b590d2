package certkeeper

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
)

// NameRule gives the names matching Pattern their own settings: another
// issuer chain (an internal CA for *.corp.example, a CA with a different
// profile or challenge), or another key type.
type NameRule struct {
	// Pattern is an exact name, "*.a.example" (any subdomain, at any
	// depth) or "re:REGEXP", as in policy.Allowlist.
	Pattern string
	// Issuers replaces Manager.Issuers for these names; nil keeps them.
	Issuers []issuer.Issuer
	// KeyType replaces Manager.KeyType for these names; zero keeps it.
	KeyType issuer.KeyType

	match policy.Policy
}

// variantRSA is the certificate kept beside the default (ECDSA) one for
// clients that cannot use ECDSA, when Manager.RSAFallback is set.
const variantRSA = "rsa"

// initRules compiles the rules' patterns and wires their issuers.
func (m *Manager) initRules() error {
	for i := range m.Rules {
		r := &m.Rules[i]
		p, err := policy.ParseAllowlist(r.Pattern)
		if err != nil {
			return fmt.Errorf("certkeeper: Rules[%d]: %w", i, err)
		}
		r.match = p
		m.wireIssuers(r.Issuers)
	}
	return nil
}

// wireIssuers lets ACME issuers without solvers, storage, email or
// profile, and local CAs without storage, use the Manager's, and both log
// to its Logger.
func (m *Manager) wireIssuers(issuers []issuer.Issuer) {
	for _, iss := range issuers {
		if a, ok := iss.(*acmeca.Issuer); ok {
			if a.Solvers == nil {
				a.Solvers = m.Solvers()
			}
			if a.Storage == nil {
				a.Storage = m.store
			}
			if a.AgreeTerms == nil {
				a.AgreeTerms = m.AgreeTerms
			}
			if a.Email == "" {
				a.Email = m.Email
			}
			if a.Profile == "" {
				a.Profile = m.Profile
			}
			if a.Logger == nil && m.Logger != nil { // one log, in the Manager's format
				a.Logger = m.Logger
			}
		}
		if c, ok := iss.(*localca.CA); ok {
			if c.Storage == nil {
				c.Storage = m.store
			}
			if c.Logger == nil && m.Logger != nil { // "local CA root created" in the Manager's log
				c.Logger = m.Logger
			}
		}
	}
}

// rule returns the first rule matching name, or nil.
func (m *Manager) rule(name string) *NameRule {
	for i := range m.Rules {
		if m.Rules[i].match.Decide(context.Background(), name) == nil {
			return &m.Rules[i]
		}
	}
	return nil
}

// issuersFor is the issuer chain for name.
func (m *Manager) issuersFor(name string) []issuer.Issuer {
	if r := m.rule(name); r != nil && len(r.Issuers) > 0 {
		return r.Issuers
	}
	return m.issuers
}

// allIssuers is every issuer the Manager may have stored certificates
// under: the rules' first, then the default chain.
func (m *Manager) allIssuers(name string) []issuer.Issuer {
	out := slices.Clone(m.issuersFor(name))
	for _, iss := range m.issuers {
		if !slices.ContainsFunc(out, func(o issuer.Issuer) bool { return o.ID() == iss.ID() }) {
			out = append(out, iss)
		}
	}
	return out
}

// keyTypeFor is the key type of new certificates for name in variant.
func (m *Manager) keyTypeFor(name, variant string) issuer.KeyType {
	if variant == variantRSA {
		return issuer.RSA2048
	}
	if r := m.rule(name); r != nil && r.KeyType != "" {
		return r.KeyType
	}
	if m.KeyType != "" {
		return m.KeyType
	}
	return issuer.ECDSAP256
}

// rsaVariant reports whether a client that cannot use ECDSA gets name's
// RSA certificate (RSAFallback): not when name's own key type is RSA
// already (Manager.KeyType, or a rule's), which serves every client, so
// that no second RSA certificate is ordered beside it.
func (m *Manager) rsaVariant(name string) bool {
	if !m.RSAFallback {
		return false
	}
	if norm, err := hostname.Normalize(name); err == nil {
		name = norm
	}
	switch m.keyTypeFor(name, "") {
	case issuer.RSA2048, issuer.RSA3072, issuer.RSA4096:
		return false
	}
	return true
}

// cacheFor is the memory cache of variant.
func (m *Manager) cacheFor(variant string) *certCache {
	if variant == variantRSA {
		return m.rsaCache
	}
	return m.cache
}

// supportsECDSA reports whether the client can use an ECDSA P-256
// certificate: TLS 1.3 always can; before it, the offered signature
// schemes, curves and cipher suites must allow it. It allocates nothing.
func supportsECDSA(hello *tls.ClientHelloInfo) bool {
	if len(hello.SignatureSchemes) > 0 {
		ok := false
		for _, s := range hello.SignatureSchemes {
			switch s {
			case tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP521AndSHA512, tls.ECDSAWithSHA1:
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if len(hello.SupportedCurves) > 0 && !slices.Contains(hello.SupportedCurves, tls.CurveP256) {
		return false
	}
	if slices.Contains(hello.SupportedVersions, tls.VersionTLS13) {
		return true
	}
	for _, c := range hello.CipherSuites {
		switch c {
		case tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256:
			return true
		}
	}
	return len(hello.CipherSuites) == 0
}
