package proxy_test

import (
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/proxy"
)

// TestBackends: HOST:PORT works for routes and the default, and each
// error names the setting at fault.
func TestBackends(t *testing.T) {
	rt, err := proxy.Backends{Default: "127.0.0.1:8080", Routes: []string{"b.test=127.0.0.1:8081", "c.test=https://10.0.0.3"}}.Router()
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{"b.test": "http://127.0.0.1:8081", "c.test": "https://10.0.0.3", "d.test": "http://127.0.0.1:8080"} {
		u, err := rt.Backend(httptest.NewRequest("GET", "http://"+host+"/", nil))
		if err != nil || u.String() != want {
			t.Errorf("backend of %s = %v, %v; want %s", host, u, err, want)
		}
	}
	for _, c := range []struct {
		b       proxy.Backends
		setting string
		msg     string
	}{
		{proxy.Backends{Routes: []string{"b.test"}}, "route", `route: route "b.test": want NAME=URL`},
		{proxy.Backends{Default: "ftp://x"}, "backend", `backend: backend "ftp://x": scheme "ftp"`},
		{proxy.Backends{Routes: []string{"b.test=127.0.0.1:1", "B.test=127.0.0.1:2"}}, "", "b.test"},
	} {
		_, err := c.b.Router()
		var se *proxy.SettingError
		if !errors.As(err, &se) || se.Setting != c.setting || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v.Router() = %v; want a SettingError for %q containing %q", c.b, err, c.setting, c.msg)
		}
	}
	// Every bad setting at once, each a SettingError.
	_, err = proxy.Backends{Default: "ftp://x", Routes: []string{"b.test", "c.test=127.0.0.1:1", "d.test="}}.Router()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != 3 {
		t.Fatalf("Router with two bad routes and a bad backend = %v; want the three errors joined", err)
	}
	for i, want := range []string{`route: route "b.test"`, `route: route "d.test"`, `backend: backend "ftp://x"`} {
		if se, ok := joined.Unwrap()[i].(*proxy.SettingError); !ok || !strings.HasPrefix(se.Error(), want) {
			t.Errorf("error %d = %v, want a SettingError starting %q", i, joined.Unwrap()[i], want)
		}
	}
	if r, err := proxy.ParseUserRoute("*.b.test=localhost:8080"); err != nil || r.Backend != "http://localhost:8080" {
		t.Errorf("ParseUserRoute = %+v, %v", r, err)
	}
	// A HOST:PORT whose port is wrong is said to be that (a trial got
	// url.Parse's "first path segment in URL cannot contain colon").
	if _, err := proxy.ParseUserRoute("e.test=127.0.0.1:99999"); err == nil || !strings.Contains(err.Error(), `route "e.test": backend "http://127.0.0.1:99999": port 99999 out of range 1-65535`) {
		t.Errorf("ParseUserRoute with port 99999 = %v", err)
	}
}

// TestBackendsPatterns: the patterns of the routes that parse, in order,
// whatever form their backend takes; a route that does not parse is left
// out (Router reports it).
func TestBackendsPatterns(t *testing.T) {
	b := proxy.Backends{Routes: []string{"b.test=127.0.0.1:8081", "bad", "*.apps.test=http://10.0.0.3:8080", "c.test=https://c.internal/"}}
	if got, want := b.Patterns(), []string{"b.test", "*.apps.test", "c.test"}; !slices.Equal(got, want) {
		t.Errorf("Patterns() = %q, want %q", got, want)
	}
}
