package cmdline

import (
	"context"
	"errors"
	"fmt"
	"net"
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
// (a listener that is off). Each error names its flag and address:
// "--listen 127.0.0.1:99999: port out of range".
func CheckListenAddrs(flagAddrs ...string) error {
	var errs []error
	for i := 0; i+1 < len(flagAddrs); i += 2 {
		if addr := flagAddrs[i+1]; addr != "" {
			if err := CheckListenAddr(addr); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", flagAddrs[i], addr, err))
			}
		}
	}
	return errors.Join(errs...)
}
