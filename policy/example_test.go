package policy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/certkeeper/certkeeper/policy"
)

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

func ExampleParseAllowlist() {
	p, err := policy.ParseAllowlist("example.test", `re:[a-z0-9-]+\.customers\.test`)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for _, name := range []string{"shop1.customers.test", "a.b.customers.test", "shop1.customers.test.evil.test"} {
		fmt.Println(name, p.Decide(ctx, name) == nil)
	}

	_, err = policy.ParseAllowlist("a..test", "re:(")
	fmt.Println(err)
	// Output:
	// shop1.customers.test true
	// a.b.customers.test false
	// shop1.customers.test.evil.test false
	// allowlist pattern "a..test": empty label
	// allowlist pattern "re:(": error parsing regexp: missing closing ): `(`
}

func ExampleAll() {
	// The customer database, as an HTTP endpoint: 200 for known names.
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("domain") != "shop1.customers.test" {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer ask.Close()

	// The allowlist comes first: a name it refuses costs no request.
	p := policy.All(
		policy.Allowlist("*.customers.test"),
		&policy.AskURL{URL: ask.URL + "/check"},
	)
	ctx := context.Background()
	for _, name := range []string{"shop1.customers.test", "shop2.customers.test", "other.test"} {
		err := p.Decide(ctx, name)
		fmt.Println(name, err == nil, errors.Is(err, policy.ErrDenied))
	}
	// Output:
	// shop1.customers.test true false
	// shop2.customers.test false true
	// other.test false true
}
