package policy_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/certkeeper/certkeeper/policy"
)

func ExampleNormalize() {
	for _, name := range []string{"WWW.Example.TEST.", "ünï.test", "a..b", "127.0.0.1"} {
		n, err := policy.Normalize(name)
		fmt.Printf("%q %v\n", n, err)
	}
	// Output:
	// "www.example.test" <nil>
	// "xn--n-nga1b.test" <nil>
	// "" invalid name "a..b": empty label
	// "" invalid name "127.0.0.1": IP address not allowed
}

func ExampleNormalizer() {
	nz := policy.Normalizer{AllowIP: true, AllowWildcard: true}
	for _, name := range []string{"*.Example.test", "::FFFF:10.0.0.1", "a.*.test"} {
		n, err := nz.Normalize(name)
		fmt.Printf("%q %v\n", n, err)
	}
	// Output:
	// "*.example.test" <nil>
	// "10.0.0.1" <nil>
	// "" invalid name "a.*.test": "*" is only allowed as the whole leftmost label
}

func ExampleAllowlist() {
	p := policy.Allowlist("example.test", "*.example.test")
	ctx := context.Background()
	for _, name := range []string{"example.test", "a.b.example.test", "other.test"} {
		err := p.Decide(ctx, name)
		fmt.Println(name, err == nil, errors.Is(err, policy.ErrDenied))
	}
	// Output:
	// example.test true false
	// a.b.example.test true false
	// other.test false true
}
