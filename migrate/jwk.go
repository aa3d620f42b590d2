package migrate

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// jwk is a private JSON Web Key (RFC 7517/7518), as certbot stores its
// account keys.
type jwk struct {
	Kty string `json:"kty"`
	// RSA
	N, E, D, P, Q, DP, DQ, QI string
	// EC
	Crv, X, Y string
}

// maxRSABytes bounds the numbers of an RSA JSON Web Key: 16384 bits, more
// than any CA accepts for an account key.
const maxRSABytes = 16384 / 8

// parseJWK parses a private RSA or EC JSON Web Key.
func parseJWK(data []byte) (crypto.Signer, error) {
	var k jwk
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("parsing JSON Web Key: %w", err)
	}
	// num decodes a field of at most max bytes: longer key material is
	// refused before any arithmetic on it (FillBytes panics on a value
	// longer than its buffer; RSA validation of a huge modulus takes
	// minutes).
	num := func(field, s string, max int, what string) (*big.Int, error) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("JSON Web Key: bad or missing %q", field)
		}
		if len(b) > max {
			return nil, fmt.Errorf("JSON Web Key: %q is %d bytes, more than the %d of %s", field, len(b), max, what)
		}
		return new(big.Int).SetBytes(b), nil
	}
	switch k.Kty {
	case "RSA":
		var vals [5]*big.Int
		for i, f := range []struct{ name, v string }{{"n", k.N}, {"e", k.E}, {"d", k.D}, {"p", k.P}, {"q", k.Q}} {
			v, err := num(f.name, f.v, maxRSABytes, "a 16384-bit RSA key")
			if err != nil {
				return nil, err
			}
			vals[i] = v
		}
		if !vals[1].IsInt64() || vals[1].Int64() > 1<<31 {
			return nil, errors.New("JSON Web Key: RSA exponent out of range")
		}
		key := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: vals[0], E: int(vals[1].Int64())},
			D:         vals[2],
			Primes:    []*big.Int{vals[3], vals[4]},
		}
		if err := key.Validate(); err != nil {
			return nil, fmt.Errorf("JSON Web Key: %w", err)
		}
		key.Precompute()
		return key, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("JSON Web Key: unsupported curve %q", k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		d, err := num("d", k.D, size, "curve "+k.Crv)
		if err != nil {
			return nil, err
		}
		b := d.FillBytes(make([]byte, size))
		key, err := ecdsa.ParseRawPrivateKey(curve, b)
		if err != nil {
			return nil, fmt.Errorf("JSON Web Key: %w", err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("JSON Web Key: unsupported key type %q", k.Kty)
}
