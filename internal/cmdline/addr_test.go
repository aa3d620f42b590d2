package cmdline

import (
	"strings"
	"testing"
)

func TestCheckListenAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8443": "", ":443": "", "127.0.0.1:": "", "[::1]:http": "", "localhost:65535": "", ":0": "",
		"127.0.0.1:99999": "port out of range", ":65536": "port out of range", ":000099999999999999999999": "port out of range",
		"localhost": "missing port in address", "foo": "missing port in address", "::1:80": "too many colons",
		":http-ish": `unknown port "http-ish"`,
	} {
		err := CheckListenAddr(addr)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckListenAddr(%q) = %v, want %q", addr, err, want)
		}
	}
	for _, tt := range []struct {
		addrs []string
		want  string
	}{
		{[]string{"--tls-addr", "127.0.0.1:8443", "--http-addr", "127.0.0.1:8443"}, "--http-addr 127.0.0.1:8443: the same port as --tls-addr 127.0.0.1:8443: give each its own port"},
		{[]string{"--tls-addr", ":443", "--http-addr", "127.0.0.1:https"}, "--http-addr 127.0.0.1:https: the same port as --tls-addr :443"},
		{[]string{"--listen", "127.0.0.1:8999", "--http-addr", "[::]:8999"}, "--http-addr [::]:8999: the same port as --listen"},
		{[]string{"--tls-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, ""},
		{[]string{"--tls-addr", "127.0.0.1:8443", "--http-addr", "127.0.0.2:8443"}, ""},
		{[]string{"--tls-addr", ":443", "--http-addr", ":80"}, ""},
		// localhost is the loopback addresses; addresses compare as such.
		{[]string{"--tls-addr", "localhost:8443", "--http-addr", "127.0.0.1:8443"}, "--http-addr 127.0.0.1:8443: the same port as --tls-addr localhost:8443"},
		{[]string{"--tls-addr", "[::1]:8443", "--http-addr", "LOCALHOST:8443"}, "--http-addr LOCALHOST:8443: the same port as --tls-addr [::1]:8443"},
		{[]string{"--tls-addr", "[::ffff:127.0.0.1]:8443", "--http-addr", "127.0.0.1:8443"}, "the same port as --tls-addr [::ffff:127.0.0.1]:8443"},
		{[]string{"--tls-addr", "localhost:8443", "--http-addr", "10.0.0.1:8443"}, ""},
		{[]string{"--tls-addr", "a.example:8443", "--http-addr", "b.example:8443"}, ""},
	} {
		err := CheckListenAddrs(tt.addrs...)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckListenAddrs(%q) = %v, want %q", tt.addrs, err, tt.want)
		}
	}
	err := CheckListenAddrs("--listen", "127.0.0.1:99999", "--http-addr", "", "--tls-addr", "localhost")
	want := "--listen 127.0.0.1:99999: port out of range\n--tls-addr localhost: missing port in address"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("CheckListenAddrs = %v, want %q...", err, want)
	}
}

// TestCheckSeparatePorts: the ops listeners may share a port with each
// other, not with a main one.
func TestCheckSeparatePorts(t *testing.T) {
	main := []string{"--tls-addr", ":8443", "--http-addr", ""}
	if err := CheckSeparatePorts(main, "--metrics-addr", "127.0.0.1:9100", "--status-addr", "127.0.0.1:9100"); err != nil {
		t.Errorf("metrics and status on one port: %v", err)
	}
	err := CheckSeparatePorts(main, "--metrics-addr", "localhost:8443", "--status-addr", "")
	want := "--metrics-addr localhost:8443: the same port as --tls-addr :8443: give each its own port"
	if err == nil || err.Error() != want {
		t.Errorf("CheckSeparatePorts = %v, want %q", err, want)
	}
}
