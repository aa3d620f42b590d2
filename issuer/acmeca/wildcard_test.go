package acmeca_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
)

// TestWildcardNeedsDNS: a wildcard with only http-01 or tls-alpn-01 is
// refused before anything is sent to the CA, saying dns-01 is needed.
func TestWildcardNeedsDNS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testca.Options{})
	proxy := testca.NewFaultProxy(t, e.ca)
	for _, typ := range []string{acmeca.HTTP01, acmeca.TLSALPN01, ""} {
		iss := e.issuer(typ)
		iss.DirectoryURL = proxy.DirectoryURL()
		_, _, err := tryIssue(t, iss, issuer.ECDSAP256, nil, "*.a.test", "a.test")
		if !errors.Is(err, acmeca.ErrWildcardNeedsDNS) || !strings.Contains(err.Error(), "dns-01 is needed") {
			t.Errorf("Issue(*.a.test) with %q = %v, want ErrWildcardNeedsDNS saying dns-01 is needed", typ, err)
		}
	}
	if n := proxy.Requests(); n != 0 {
		t.Errorf("the CA received %d requests, want 0", n)
	}
	if n := e.ca.Orders(); n != 0 {
		t.Errorf("Pebble saw %d orders, want 0", n)
	}
}
