package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"strings"
)

// KeyType names a private key algorithm and size.
type KeyType string

// The key types certkeeper generates. The zero KeyType means ECDSAP256.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	RSA2048   KeyType = "rsa2048"
	RSA3072   KeyType = "rsa3072"
	RSA4096   KeyType = "rsa4096"
)

// KeyTypes lists every supported key type, default first.
var KeyTypes = []KeyType{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096}

// otherKeyTypes are other tools' key type names: lego's (ec256, ec384,
// rsa8192 aside), certbot's --key-type values with their defaults (ecdsa
// is secp256r1, rsa 2048 bits), certbot's --elliptic-curve values (and
// OpenSSL's name of P-256), and the curves' short names.
var otherKeyTypes = map[string]KeyType{
	"ec256": ECDSAP256, "ec384": ECDSAP384, "p256": ECDSAP256, "p384": ECDSAP384,
	"ecdsa": ECDSAP256, "rsa": RSA2048,
	"secp256r1": ECDSAP256, "prime256v1": ECDSAP256, "secp384r1": ECDSAP384,
}

// ParseKeyType parses a key type name as used in flags and config. The
// empty string gives ECDSAP256. certbot's and lego's names (ecdsa, rsa,
// ec256, ec384, secp384r1) give the key type they mean.
func ParseKeyType(s string) (KeyType, error) {
	if s == "" {
		return ECDSAP256, nil
	}
	if k, ok := otherKeyTypes[strings.ToLower(s)]; ok {
		return k, nil
	}
	k := KeyType(strings.ToLower(s))
	for _, t := range KeyTypes {
		if k == t {
			return k, nil
		}
	}
	names := make([]string, len(KeyTypes))
	for i, t := range KeyTypes {
		names[i] = string(t)
	}
	return "", fmt.Errorf("unknown key type %q: use one of %s", s, strings.Join(names, ", "))
}

// Generate makes a new private key of type k.
func (k KeyType) Generate() (crypto.Signer, error) {
	switch k {
	case "", ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("unknown key type %q", string(k))
}

// KeyTypeOf reports the KeyType of an existing key ("" if unsupported).
func KeyTypeOf(key crypto.PublicKey) KeyType {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256
		case elliptic.P384():
			return ECDSAP384
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
	}
	return ""
}

// NewCSR makes a DER certificate request for names signed by key. IP
// literals become IP SANs, everything else DNS SANs; the subject is left
// empty, as CAs take names from the SANs (the first name is also the CN
// for CAs that still set one).
func NewCSR(key crypto.Signer, names []string) ([]byte, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("creating CSR: no names")
	}
	tmpl := &x509.CertificateRequest{}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if len(names[0]) <= 64 && net.ParseIP(names[0]) == nil {
		tmpl.Subject = pkix.Name{CommonName: names[0]}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("creating CSR for %s: %w", strings.Join(names, ", "), err)
	}
	return der, nil
}
