package cmdline

import (
	"errors"
	"flag"
	"slices"
	"testing"
)

func TestFlagsIn(t *testing.T) {
	for msg, want := range map[string][]string{
		"port 443 is already in use: choose another address with --tls-addr":                    {"tls-addr"},
		"--listen 0.0.0.0:1 is open: give --token-file (or --client-ca), or --listen 127.0.0.1": {"listen", "token-file", "client-ca"},
		"--http.webroot and a--b and x---y and ---z":                                            {"http.webroot"},
		"no flags here, only -d and a-b":                                                        nil,
	} {
		if got := FlagsIn(msg); !slices.Equal(got, want) {
			t.Errorf("FlagsIn(%q) = %q, want %q", msg, got, want)
		}
	}
}

func TestAttribute(t *testing.T) {
	source := func(flag string) string {
		switch flag {
		case "--tls-addr":
			return "tls_addr in /etc/p.yaml"
		case "--storage":
			return "--storage" // given on the command line
		}
		return "default"
	}
	base := errors.New("port 443 is in use: change --tls-addr, --storage or --http-addr")
	err := Attribute(base, source)
	const want = "port 443 is in use: change --tls-addr, --storage or --http-addr; --tls-addr is tls_addr in /etc/p.yaml"
	if err == nil || err.Error() != want || !errors.Is(err, base) {
		t.Errorf("Attribute = %v, want %q wrapping the error", err, want)
	}
	if err := Attribute(errors.New("give --storage"), source); err.Error() != "give --storage" {
		t.Errorf("a flag given on the command line was attributed: %v", err)
	}
	// Joined mistakes each get their own note (a trial's --max-conns
	// note ended a names entry's DNS error).
	other := errors.New("names[0]: dns-01 needs --dns")
	got := Attribute(errors.Join(base, other), source).Error()
	if want := want + "\n" + other.Error(); got != want {
		t.Errorf("Attribute of joined errors = %q, want %q", got, want)
	}
	if Attribute(nil, source) != nil || Attribute(base, nil) != base {
		t.Error("nil error or nil source changed something")
	}
}

func TestGiven(t *testing.T) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.Bool("a", false, "")
	fs.Bool("b", true, "")
	if err := fs.Parse([]string{"-a=false"}); err != nil {
		t.Fatal(err)
	}
	if !Given(fs, "a") || Given(fs, "b") || Given(fs, "c") {
		t.Error("Given: want a (given, even as its default) and not b (default) or c (undefined)")
	}
}
