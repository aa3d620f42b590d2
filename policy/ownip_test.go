package policy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// resolverFunc adapts a function to Resolver.
type resolverFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

// hosts is a resolver answering from a table; an absent name is NXDOMAIN.
func hosts(table map[string][]string) Resolver {
	return resolverFunc(func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		if err := ctx.Err(); err != nil {
			return nil, &net.DNSError{Err: err.Error(), Name: host}
		}
		list, ok := table[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var addrs []netip.Addr
		for _, s := range list {
			addrs = append(addrs, netip.MustParseAddr(s))
		}
		return addrs, nil
	})
}

func loopbackAddrs() ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
}

func TestRequireOwnIP(t *testing.T) {
	r := &RequireOwnIP{
		Resolver: hosts(map[string][]string{
			"v4.test":      {"127.0.0.1"},
			"v6.test":      {"::1"},
			"both.test":    {"127.0.0.1", "::1"},
			"mapped.test":  {"::ffff:127.0.0.1"},
			"partly.test":  {"127.0.0.1", "198.51.100.7"},
			"foreign.test": {"198.51.100.7"},
			"other6.test":  {"::1", "2001:db8::1"},
			"nothing.test": {},
		}),
		Addrs:        loopbackAddrs,
		AllowPrivate: true, // the test's own addresses are loopback
	}
	tests := []struct {
		name   string
		reason string // "" to allow
	}{
		{"v4.test", ""},
		{"v6.test", ""},
		{"both.test", ""},
		{"mapped.test", ""},
		{"partly.test", "resolves to 198.51.100.7, not an address of this host"},
		{"foreign.test", "resolves to 198.51.100.7"},
		{"other6.test", "resolves to 2001:db8::1"},
		{"nothing.test", "resolves to no address"},
		{"absent.test", "no such host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.Decide(t.Context(), tt.name)
			if tt.reason == "" {
				if err != nil {
					t.Errorf("Decide(%q) = %v, want nil", tt.name, err)
				}
				return
			}
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tt.name) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Decide(%q) = %v, want ErrDenied naming the name and saying %q", tt.name, err, tt.reason)
			}
		})
	}
}

func TestRequireOwnIPLookupError(t *testing.T) {
	r := &RequireOwnIP{Resolver: hosts(nil), Addrs: loopbackAddrs}
	err := r.Decide(t.Context(), "absent.test")
	var de *net.DNSError
	if !errors.Is(err, ErrDenied) || !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("Decide(%q) = %v, want ErrDenied wrapping the *net.DNSError", "absent.test", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = r.Decide(ctx, "absent.test")
	if err == nil || errors.Is(err, ErrDenied) {
		t.Errorf("Decide(canceled, %q) = %v, want an error that is not ErrDenied", "absent.test", err)
	}
}

func TestRequireOwnIPAddrsError(t *testing.T) {
	boom := errors.New("no interfaces")
	r := &RequireOwnIP{
		Resolver: hosts(map[string][]string{"a.test": {"127.0.0.1"}}),
		Addrs:    func() ([]netip.Addr, error) { return nil, boom },
	}
	err := r.Decide(t.Context(), "a.test")
	if !errors.Is(err, ErrDenied) || !errors.Is(err, boom) {
		t.Errorf("Decide(%q) with Addrs failing = %v, want ErrDenied wrapping %v", "a.test", err, boom)
	}
}

// TestRequireOwnIPAddrsCached checks that the host's addresses are listed
// once per ownAddrsTTL, not once per name, and that a change is seen
// after it.
func TestRequireOwnIPAddrsCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		own := "127.0.0.1"
		r := &RequireOwnIP{
			Resolver: hosts(map[string][]string{"a.test": {"127.0.0.2"}}),
			Addrs: func() ([]netip.Addr, error) {
				calls.Add(1)
				return []netip.Addr{netip.MustParseAddr(own)}, nil
			},
			AllowPrivate: true,
		}
		for range 10 {
			if err := r.Decide(t.Context(), "a.test"); !errors.Is(err, ErrDenied) {
				t.Fatalf("Decide(%q) = %v, want ErrDenied", "a.test", err)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("Addrs called %d times for 10 names, want 1", n)
		}
		own = "127.0.0.2" // this host moved to the name's address
		time.Sleep(ownAddrsTTL - time.Second)
		if err := r.Decide(t.Context(), "a.test"); err == nil {
			t.Errorf("Decide(%q) before the addresses expire = nil, want the old answer", "a.test")
		}
		time.Sleep(time.Second)
		if err := r.Decide(t.Context(), "a.test"); err != nil {
			t.Errorf("Decide(%q) after the addresses expire = %v, want nil", "a.test", err)
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("Addrs called %d times, want 2", n)
		}
	})
}

// TestRequireOwnIPDefaults runs on the real interfaces and resolver:
// "localhost" resolves from /etc/hosts to loopback, which is on lo.
func TestRequireOwnIPDefaults(t *testing.T) {
	for _, linkLocal := range []bool{true, false} {
		all, err := interfaceAddrs(linkLocal)
		if err != nil {
			t.Fatalf("interfaceAddrs(%v) = %v", linkLocal, err)
		}
		for _, a := range all {
			if a.IsLinkLocalUnicast() && !linkLocal || a.Is4In6() || a.Zone() != "" || !a.IsValid() || a.IsMulticast() {
				t.Errorf("interfaceAddrs(%v) contains %v, want no multicast, mapped or zoned address (nor link-local)", linkLocal, a)
			}
		}
	}
	addrs, _ := interfaceAddrs(false)
	if !slices.Contains(addrs, netip.MustParseAddr("127.0.0.1")) {
		t.Skipf("127.0.0.1 is not on any interface (%v)", addrs)
	}
	r := &RequireOwnIP{Resolver: hosts(map[string][]string{"a.test": {"127.0.0.1"}}), AllowPrivate: true}
	if err := r.Decide(t.Context(), "a.test"); err != nil {
		t.Errorf("Decide(%q) resolving to 127.0.0.1 with the default Addrs and AllowPrivate = %v, want nil", "a.test", err)
	}
	r.AllowPrivate = false
	if err := r.Decide(t.Context(), "a.test"); !errors.Is(err, ErrDenied) {
		t.Errorf("Decide(%q) resolving to 127.0.0.1 without AllowPrivate = %v, want ErrDenied", "a.test", err)
	}

	r = &RequireOwnIP{Addrs: loopbackAddrs, AllowPrivate: true}
	if got, err := net.DefaultResolver.LookupNetIP(t.Context(), "ip", "localhost"); err != nil || len(got) == 0 {
		t.Skipf("localhost does not resolve here: %v, %v", got, err)
	}
	if err := r.Decide(t.Context(), "localhost"); err != nil {
		t.Errorf("Decide(%q) with the default Resolver = %v, want nil", "localhost", err)
	}
}

// TestRequireOwnIPRefusesPrivate: a name resolving to a loopback,
// link-local, private, shared (RFC 6598) or unspecified address is refused
// even when the address is this host's: a public CA cannot reach it, and
// the order would only spend the account's failed-validation budget.
func TestRequireOwnIPRefusesPrivate(t *testing.T) {
	local := []string{"127.0.0.1", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.5", "fd00::5",
		"169.254.3.4", "fe80::1", "100.64.0.7", "0.0.0.0", "::ffff:127.0.0.1"}
	table := map[string][]string{"public.test": {"203.0.113.9", "2001:db8::9"}, "mixed.test": {"203.0.113.9", "10.1.2.3"}}
	own := []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::9")}
	for i, a := range local {
		table["local"+strconv.Itoa(i)+".test"] = []string{a}
		own = append(own, netip.MustParseAddr(a).Unmap())
	}
	r := &RequireOwnIP{Resolver: hosts(table), Addrs: func() ([]netip.Addr, error) { return own, nil }}
	for i, a := range local {
		name := "local" + strconv.Itoa(i) + ".test"
		err := r.Decide(t.Context(), name)
		if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), netip.MustParseAddr(a).Unmap().String()) {
			t.Errorf("Decide(%q), resolving to this host's %s = %v, want ErrDenied naming the address", name, a, err)
		}
	}
	if err := r.Decide(t.Context(), "mixed.test"); !errors.Is(err, ErrDenied) {
		t.Errorf("Decide(%q), resolving to a public and a private address = %v, want ErrDenied", "mixed.test", err)
	}
	if err := r.Decide(t.Context(), "public.test"); err != nil {
		t.Errorf("Decide(%q), resolving to this host's public addresses = %v, want nil", "public.test", err)
	}

	// With AllowPrivate they count, when they are this host's.
	r.AllowPrivate = true
	for i, a := range local {
		if name := "local" + strconv.Itoa(i) + ".test"; netip.MustParseAddr(a).Unmap().IsUnspecified() {
			continue // never in a real Addrs; here only to show it is refused
		} else if err := r.Decide(t.Context(), name); err != nil {
			t.Errorf("Decide(%q) with AllowPrivate, resolving to this host's %s = %v, want nil", name, a, err)
		}
	}
	r2 := &RequireOwnIP{Resolver: hosts(table), Addrs: loopbackAddrs, AllowPrivate: true}
	if err := r2.Decide(t.Context(), "local2.test"); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "not an address of this host") {
		t.Errorf("Decide(%q) with AllowPrivate, resolving to 10.1.2.3, not this host's = %v, want ErrDenied", "local2.test", err)
	}
}
