package issuer

import (
	"strings"
	"testing"
)

func TestParseKeyType(t *testing.T) {
	for in, want := range map[string]KeyType{
		"": ECDSAP256, "ecdsa-p256": ECDSAP256, "ECDSA-P384": ECDSAP384, "rsa3072": RSA3072,
		// certbot's and lego's names
		"ecdsa": ECDSAP256, "rsa": RSA2048, "ec256": ECDSAP256, "ec384": ECDSAP384, "rsa4096": RSA4096,
		"secp384r1": ECDSAP384, "secp256r1": ECDSAP256, "prime256v1": ECDSAP256,
	} {
		if got, err := ParseKeyType(in); err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"rsa1024", "ed25519", "ec521", "rsa8192", "secp521r1"} {
		if _, err := ParseKeyType(bad); err == nil || !strings.Contains(err.Error(), "use one of ecdsa-p256, ecdsa-p384, rsa2048, rsa3072, rsa4096") {
			t.Errorf("ParseKeyType(%q) = %v, want the list of key types", bad, err)
		}
	}
}
