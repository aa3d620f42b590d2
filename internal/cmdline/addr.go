package cmdline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// CheckListenAddr checks the syntax of a listen address, as a
// configuration check must before anything starts: HOST:PORT (HOST may be
// empty), PORT a number 0-65535 or a service name known offline
// (/etc/services). It neither listens nor resolves HOST. An empty PORT is
// port 0, as for net.Listen.
func CheckListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if aerr, ok := errors.AsType[*net.AddrError](err); ok {
		return fmt.Errorf("%s: give HOST:PORT, e.g. 127.0.0.1:8443 or :443", aerr.Err)
	} else if err != nil {
		return err
	}
	if strings.Trim(port, "0123456789") == "" {
		if _, err := strconv.ParseUint("0"+port, 10, 16); err != nil {
			return errors.New("port out of range")
		}
		return nil
	}
	if _, err := (&net.Resolver{PreferGo: true}).LookupPort(context.Background(), "tcp", port); err != nil {
		return fmt.Errorf("unknown port %q: give a number, e.g. :443", port)
	}
	return nil
}

// CheckListenAddrs checks listen addresses given as flag name, address
// pairs ("--listen", addr, ...) with CheckListenAddr, skipping empty ones
// (a listener that is off), and refuses two that would share a port (the
// second would find it "in use" at start, by the first). Each error names
// its flag and address: "--listen 127.0.0.1:99999: port out of range".
func CheckListenAddrs(flagAddrs ...string) error {
	var errs []error
	for i := 0; i+1 < len(flagAddrs); i += 2 {
		addr := flagAddrs[i+1]
		if addr == "" {
			continue
		}
		if err := CheckListenAddr(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", flagAddrs[i], addr, err))
			continue
		}
		for j := 0; j < i; j += 2 {
			if sameListener(addr, flagAddrs[j+1]) {
				errs = append(errs, fmt.Errorf("%s %s: the same port as %s %s: give each its own port", flagAddrs[i], addr, flagAddrs[j], flagAddrs[j+1]))
			}
		}
	}
	return errors.Join(errs...)
}

// CheckSeparatePorts refuses listen addresses in others (flag name,
// address pairs, as for CheckListenAddrs) that share a port with one in
// main, naming both. The addresses in others may share one among
// themselves (metrics and a status page can be served by one listener);
// empty and malformed ones are left to CheckListenAddrs.
func CheckSeparatePorts(main []string, others ...string) error {
	var errs []error
	for i := 0; i+1 < len(others); i += 2 {
		for j := 0; j+1 < len(main); j += 2 {
			if others[i+1] != "" && main[j+1] != "" && sameListener(others[i+1], main[j+1]) {
				errs = append(errs, fmt.Errorf("%s %s: the same port as %s %s: give each its own port", others[i], others[i+1], main[j], main[j+1]))
			}
		}
	}
	return errors.Join(errs...)
}

// sameListener reports whether listening on a and on b (valid listen
// addresses) would collide: the same port, not 0, on the same host or on
// every address ("", 0.0.0.0, ::). IP addresses are compared as
// addresses (127.0.0.1 and ::ffff:127.0.0.1 are one) and "localhost" as
// the loopback addresses it names; other host names, as written, since
// the check resolves nothing.
func sameListener(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, err := net.SplitHostPort(b)
	if err != nil {
		return false
	}
	r := &net.Resolver{PreferGo: true}
	na, errA := r.LookupPort(context.Background(), "tcp", pa)
	nb, errB := r.LookupPort(context.Background(), "tcp", pb)
	if errA != nil || errB != nil || na != nb || na == 0 {
		return false
	}
	everywhere := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	if everywhere(ha) || everywhere(hb) || strings.EqualFold(ha, hb) {
		return true
	}
	addrsA, addrsB := listenHostAddrs(ha), listenHostAddrs(hb)
	return slices.ContainsFunc(addrsA, func(x netip.Addr) bool { return slices.Contains(addrsB, x) })
}

// listenHostAddrs are the addresses a listen address's host stands for,
// known offline: an IP address itself, "localhost" the loopback
// addresses; nil for any other name.
func listenHostAddrs(host string) []netip.Addr {
	if strings.EqualFold(host, "localhost") {
		return []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}
	}
	return nil
}
