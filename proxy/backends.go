package proxy

import (
	"errors"
	"fmt"
	"strings"
)

// Backends are a proxy's backends as a user writes them, in flags or a
// configuration file: where the certkeeper command's --backend and --route
// become a Router.
type Backends struct {
	// Default is the backend of every name without a route: a URL, or
	// HOST:PORT for http://HOST:PORT (BackendURL). Empty: the same-IP
	// rule (RouterConfig.Default).
	Default string
	// Routes are NAME=URL routes (ParseUserRoute).
	Routes []string
	// DefaultName is the name served to clients that send no server name
	// (RouterConfig.DefaultName).
	DefaultName string
}

// SettingError is a Backends that does not make a Router: Setting is
// "route" or "backend" when one of them is at fault, and empty when they
// do not fit together (two routes for one pattern).
type SettingError struct {
	Setting string
	Err     error
}

func (e *SettingError) Error() string {
	if e.Setting == "" {
		return e.Err.Error()
	}
	return e.Setting + ": " + e.Err.Error()
}

func (e *SettingError) Unwrap() error { return e.Err }

// ParseUserRoute is ParseRoute for a route as a user writes it: its URL
// may also be HOST:PORT, for http://HOST:PORT, as in
// "b.test=127.0.0.1:8081".
func ParseUserRoute(s string) (Route, error) {
	if name, backend, ok := strings.Cut(s, "="); ok {
		u, err := BackendURL(strings.TrimSpace(backend))
		if err != nil { // its own words: "port 99999 out of range", not url.Parse's about a colon
			return Route{}, fmt.Errorf("route %q: %w", strings.TrimSpace(name), err)
		}
		s = name + "=" + u
	}
	return ParseRoute(s)
}

// Router checks b and returns the Router it describes. Its error joins
// (errors.Join) a *SettingError for each bad route and for a bad default
// backend, so that a user sees every one at once; or it is one
// *SettingError for routes that do not fit together. errors.As finds the
// first.
func (b Backends) Router() (*Router, error) {
	var routes []Route
	var errs []error
	for _, r := range b.Routes {
		route, err := ParseUserRoute(r)
		if err != nil {
			errs = append(errs, &SettingError{Setting: "route", Err: err})
			continue
		}
		routes = append(routes, route)
	}
	var def string
	if b.Default != "" {
		var err error
		if def, err = BackendURL(b.Default); err != nil {
			errs = append(errs, &SettingError{Setting: "backend", Err: err})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	rt, err := NewRouter(RouterConfig{Routes: routes, Default: def, DefaultName: b.DefaultName})
	if err != nil {
		return nil, &SettingError{Err: err}
	}
	return rt, nil
}

// Patterns returns the name patterns of b's Routes that parse
// (ParseUserRoute), in their order: the names the proxy routes, which its
// policy allows (policy.Config.Routed).
func (b Backends) Patterns() []string {
	var out []string
	for _, r := range b.Routes {
		if route, err := ParseUserRoute(r); err == nil {
			out = append(out, route.Pattern)
		}
	}
	return out
}
