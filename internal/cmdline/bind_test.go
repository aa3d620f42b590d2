package cmdline

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

type bindInner struct {
	Zone []string `yaml:"dns_zone" arg:"ZONE" help:"ZONE that holds the records; repeatable"`
}

type bindSkip struct {
	bindInner `bind:"-"`
	Other     bool `flag:"other" help:"other"`
}

type bindConfig struct {
	bindInner `yaml:",inline"`
	Listen    string            `yaml:"listen" arg:"ADDR" default:"127.0.0.1:8999" help:"ADDR of the API"`
	Timeout   time.Duration     `yaml:"issue_timeout" arg:"DURATION" help:"wait up to DURATION"`
	Fallback  bool              `yaml:"self_signed_fallback" help:"answer with a self-signed certificate"`
	Port      int               `yaml:"check_port" arg:"PORT" default:"53" help:"PORT to ask on"`
	Settings  map[string]string `yaml:"dns_setting" arg:"NAME=VALUE" help:"NAME=VALUE setting; repeatable"`
	TLSAddr   string            `yaml:"tls_alpn_addr" arg:"ADDR" deprecated:"tls-addr" help:"ADDR for tls-alpn-01"`
	Names     []string          `yaml:"names"` // config file only: no help, no flag
	local     string            `flag:"d" arg:"NAME" help:"a NAME"`
	skipped   bindInner         `bind:"-"` //lint:ignore U1000 Bind must skip it, which the test checks
}

// TestBind: each field with help becomes a flag of its yaml key's name,
// with its default, its placeholder and its deprecated alias; values
// given on the command line land in the fields, embedded ones too.
func TestBind(t *testing.T) {
	c := &bindConfig{Timeout: 30 * time.Second}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	Bind(fs, c)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	want := []string{"check-port", "d", "dns-setting", "dns-zone", "issue-timeout", "listen", "self-signed-fallback", "tls-addr", "tls-alpn-addr"}
	if !slices.Equal(names, want) {
		t.Fatalf("flags %v, want %v", names, want)
	}
	for name, def := range map[string]string{"listen": "127.0.0.1:8999", "issue-timeout": "30s", "check-port": "53", "self-signed-fallback": "false"} {
		if got := fs.Lookup(name).DefValue; got != def {
			t.Errorf("--%s default %q, want %q", name, got, def)
		}
	}
	if arg, _ := flag.UnquoteUsage(fs.Lookup("listen")); arg != "ADDR" {
		t.Errorf("--listen placeholder %q, want ADDR", arg)
	}
	if c.Listen != "127.0.0.1:8999" || c.Port != 53 {
		t.Errorf("defaults not in the fields: %+v", c)
	}
	var notes strings.Builder
	args := []string{"--listen", ":1", "--issue-timeout", "2d", "--self-signed-fallback", "--check-port", "5353",
		"--dns-setting", "a=b", "--dns-zone", "x.example", "--dns-zone", "y.example", "--tls-addr", ":443", "-d", "a.example"}
	if _, err := Parse(fs, args, false, &notes); err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":1" || c.Timeout != 48*time.Hour || !c.Fallback || c.Port != 5353 || c.Settings["a"] != "b" ||
		!slices.Equal(c.Zone, []string{"x.example", "y.example"}) || c.TLSAddr != ":443" || c.local != "a.example" {
		t.Errorf("parsed into %+v", c)
	}
	if !strings.Contains(notes.String(), "--tls-addr is deprecated") {
		t.Errorf("no deprecation note for --tls-addr: %q", notes.String())
	}
	if err := fs.Set("check-port", "x"); err == nil {
		t.Error("--check-port x accepted")
	}
}

// TestBindSkip: a struct tagged bind:"-" is left out.
func TestBindSkip(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	Bind(fs, &bindSkip{})
	if fs.Lookup("dns-zone") != nil || fs.Lookup("other") == nil {
		t.Error("bind:\"-\" not honoured")
	}
}

// TestBindMistakes: a tag Bind cannot honour panics at once.
func TestBindMistakes(t *testing.T) {
	for name, v := range map[string]any{
		"no placeholder in help": &struct {
			A string `flag:"a" arg:"ADDR" help:"where"`
		}{},
		"bad default": &struct {
			A int `flag:"a" default:"x" help:"n"`
		}{},
		"no name": &struct {
			A string `help:"n"`
		}{},
		"unsupported type": &struct {
			A float64 `flag:"a" help:"n"`
		}{},
		"not a pointer": struct{}{},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			Bind(flag.NewFlagSet("t", flag.ContinueOnError), v)
		})
	}
}
