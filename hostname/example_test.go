package hostname_test

import (
	"fmt"

	"github.com/certkeeper/certkeeper/hostname"
)

func ExampleNormalize() {
	for _, name := range []string{"WWW.Example.TEST.", "ünï.test", "a..b", "127.0.0.1"} {
		n, err := hostname.Normalize(name)
		fmt.Printf("%q %v\n", n, err)
	}
	// Output:
	// "www.example.test" <nil>
	// "xn--n-nga1b.test" <nil>
	// "" invalid name "a..b": empty label
	// "" invalid name "127.0.0.1": IP address not allowed
}

func ExampleNormalizer() {
	nz := hostname.Normalizer{AllowIP: true, AllowWildcard: true}
	for _, name := range []string{"*.Example.test", "::FFFF:10.0.0.1", "a.*.test"} {
		n, err := nz.Normalize(name)
		fmt.Printf("%q %v\n", n, err)
	}
	// Output:
	// "*.example.test" <nil>
	// "10.0.0.1" <nil>
	// "" invalid name "a.*.test": "*" is only allowed as the whole leftmost label
}
