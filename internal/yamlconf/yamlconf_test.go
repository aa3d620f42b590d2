package yamlconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/fileowner"
)

type testName struct {
	Pattern string   `yaml:"pattern"`
	CA      []string `yaml:"ca"`
}

type testShared struct {
	Email string `yaml:"email"`
}

type testConfig struct {
	Allow      []string          `yaml:"allow"`
	Shared     testShared        `yaml:",inline"`
	Grace      time.Duration     `yaml:"grace_period" alias:"grace"`
	Debug      bool              `yaml:"debug"`
	MaxConns   int               `yaml:"max_conns"`
	Names      []testName        `yaml:"names"`
	DNSSetting map[string]string `yaml:"dns_setting"`
	Ignored    string            `yaml:"-"`
}

// checkNoX refuses a value "x" of any key, as a caller's Check would.
func checkNoX(key, v string) error {
	if v == "x" {
		return fmt.Errorf("%q is not allowed for %s", v, key)
	}
	return nil
}

func TestDecode(t *testing.T) {
	text := `allow: a.example
email: me@a.example
grace: 1d12h
debug: yes
max_conns: 10
names:
  - pattern: b.example
    ca: local
dns_setting: {zone: a.example}
`
	var c testConfig
	notes, err := Decode("c.yaml", []byte(text), &c, checkNoX)
	if err != nil {
		t.Fatal(err)
	}
	want := testConfig{Allow: []string{"a.example"}, Shared: testShared{Email: "me@a.example"}, Grace: 36 * time.Hour, Debug: true, MaxConns: 10,
		Names: []testName{{Pattern: "b.example", CA: []string{"local"}}}, DNSSetting: map[string]string{"zone": "a.example"}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Decode = %+v, want %+v", c, want)
	}
	if wantNotes := []string{"c.yaml:3: grace is deprecated and will be removed; use grace_period"}; !slices.Equal(notes, wantNotes) {
		t.Errorf("notes = %q, want %q", notes, wantNotes)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		want       []string
	}{
		{"typo", "alow: a\n", []string{"c.yaml:1: alow: unknown key; did you mean allow?"}},
		{"unknown", "frobnicate: 1\n", []string{"c.yaml:1: frobnicate: unknown key (docs/config.md lists them)"}},
		{"typo in list", "names:\n  - patern: a\n", []string{"c.yaml:2: names[0].patern: unknown key; did you mean pattern?"}},
		{"every mistake", "debug: maybe\nmax_conns: many\ngrace_period: 1 day\n", []string{
			`c.yaml:1: debug: "maybe": want true or false`,
			`c.yaml:2: max_conns: "many": want a whole number`,
			`c.yaml:3: grace_period: "1 day": want a duration such as 7d, 36h, 1h30m or 30s`}},
		{"list for a value", "email: [a, b]\n", []string{"c.yaml:1: email: want a single value, not a list"}},
		{"settings for a list", "allow: {a: b}\n", []string{"c.yaml:1: allow: want a value or a list of values, not key: value settings"}},
		{"twice", "allow: a\nallow: b\n", []string{"c.yaml:2: allow: given twice (first on line 1): keep one"}},
		{"check", "allow: [a, x]\n", []string{`c.yaml:1: allow[1]: "x" is not allowed for allow`}},
		{"map value", "dns_setting: {zone: [a]}\n", []string{"c.yaml:1: dns_setting.zone: want a single value, not a list"}},
		{"not a mapping", "- a\n", []string{"c.yaml:1: want key: value lines"}},
		{"not YAML", "allow: [a\n", []string{"c.yaml:1: did not find expected ',' or ']' (not valid YAML)"}},
		// yaml.v3 gives its parser errors' lines counted from 0 (a
		// trial's unclosed "[" on line 7 was reported on line 6).
		{"unclosed on line 3", "x: 1\ny: 2\nallow: [a,\n b\n", []string{"c.yaml:3: did not find expected ',' or ']' (not valid YAML)"}},
		{"key indented wrongly", "x: 1\nnames:\n  pattern: a\n ca: x\n", []string{"c.yaml:4: did not find expected key (not valid YAML)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c testConfig
			_, err := Decode("c.yaml", []byte(tt.text), &c, checkNoX)
			if err == nil {
				t.Fatalf("Decode(%q) = nil, want %q", tt.text, tt.want)
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tt.want) {
				t.Errorf("Decode(%q) = %q, want %q", tt.text, got, tt.want)
			}
			if !errors.As(err, new(*Error)) {
				t.Errorf("Decode(%q) = %T, want *Error in it", tt.text, err)
			}
		})
	}
}

// TestDecodeEmpty: a file with no setting (empty, only comments, {}) is
// an error, as a file emptied or cut short while being written would
// replace every setting with the defaults at a reload; a key without a
// value sets nothing.
func TestDecodeEmpty(t *testing.T) {
	var c testConfig
	c.Shared.Email = "kept"
	for _, text := range []string{"", "# nothing\n", "{}\n", "email:\n"} {
		notes, err := Decode("c.yaml", []byte(text), &c, nil)
		if empty := text != "email:\n"; empty != (err != nil && strings.Contains(err.Error(), "c.yaml: holds no setting")) || notes != nil || c.Shared.Email != "kept" {
			t.Errorf("Decode(%q) = %q, %v, email %q; want nothing set, and an error for a file without a setting: %v", text, notes, err, c.Shared.Email, empty)
		}
	}
}

func TestKeysAndAliases(t *testing.T) {
	typ := reflect.TypeOf(testConfig{})
	if got, want := Keys(typ), []string{"allow", "debug", "dns_setting", "email", "grace_period", "max_conns", "names"}; !slices.Equal(got, want) {
		t.Errorf("Keys = %q, want %q", got, want)
	}
	if got := Aliases(typ); !reflect.DeepEqual(got, map[string]string{"grace": "grace_period"}) {
		t.Errorf("Aliases = %v", got)
	}
}

// TestGiven: the top-level keys a file sets, an alias under its new key.
func TestGiven(t *testing.T) {
	got := Given([]byte("allow: [a.example]\ngrace: 1h\nemail: \"\"\n"), reflect.TypeOf(testConfig{}))
	if want := map[string]string{"allow": "allow", "grace_period": "grace", "email": "email"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Given = %v, want %v", got, want)
	}
	if got := Given([]byte("allow: [\n"), reflect.TypeOf(testConfig{})); len(got) != 0 {
		t.Errorf("Given(bad YAML) = %v, want none", got)
	}
}

func TestOverridden(t *testing.T) {
	data := []byte("allow: [a.example]\ngrace: 1h\nemail: a@a.example\ndebug: true\n")
	set := map[string]bool{"grace-period": true, "allow": true, "max-conns": true}
	if got, want := Overridden(data, reflect.TypeOf(testConfig{}), set), []string{"allow", "grace_period"}; !slices.Equal(got, want) {
		t.Errorf("Overridden = %q, want %q", got, want)
	}
}

type overlayInner struct {
	Zone     string            `yaml:"dns_zone"`
	Settings map[string]string `yaml:"dns_setting"`
}

type overlayConfig struct {
	overlayInner `yaml:",inline"`
	Allow        []string      `yaml:"allow"`
	Listen       string        `yaml:"listen"`
	Timeout      time.Duration `yaml:"issue_timeout"`
	Names        []testName    `yaml:"names"`
	note         string
}

func TestOverlay(t *testing.T) {
	file := &overlayConfig{Allow: []string{"file.example"}, Timeout: time.Minute, Names: []testName{{Pattern: "a"}}, note: "kept"}
	file.Zone = "file.zone"
	file.Settings = map[string]string{"a": "1", "b": "2"}
	flags := &overlayConfig{Allow: []string{"flag.example"}, Listen: ":8443", Timeout: 2 * time.Minute, note: "flag"}
	flags.Zone = "flag.zone"
	flags.Settings = map[string]string{"b": "3"}
	set := map[string]bool{"dns-zone": true, "dns-setting": true}
	Overlay(file, flags, set, "listen", "issue-timeout")
	want := &overlayConfig{Allow: []string{"file.example"}, Listen: ":8443", Timeout: time.Minute, Names: []testName{{Pattern: "a"}}, note: "kept"}
	want.Zone = "flag.zone"
	want.Settings = map[string]string{"a": "1", "b": "3"}
	if !reflect.DeepEqual(file, want) {
		t.Errorf("Overlay = %+v, want %+v", file, want)
	}

	set = map[string]bool{"allow": true, "issue-timeout": true}
	Overlay(file, flags, set)
	if !slices.Equal(file.Allow, flags.Allow) || file.Timeout != flags.Timeout || file.Zone != "flag.zone" {
		t.Errorf("set flags not laid over: %+v", file)
	}
}

func TestChanged(t *testing.T) {
	base := func() *testConfig {
		return &testConfig{Allow: []string{"a.test"}, Shared: testShared{Email: "a@a.test"}, Grace: time.Hour,
			Names: []testName{{Pattern: "b.test", CA: []string{"local"}}}, DNSSetting: map[string]string{"zone": "a.test"}, Ignored: "x"}
	}
	for _, tt := range []struct {
		name   string
		change func(c *testConfig)
		want   []string
	}{
		{"nothing", func(c *testConfig) {}, nil},
		{"key without yaml name", func(c *testConfig) { c.Ignored = "y" }, nil},
		{"empty list for none", func(c *testConfig) { c.Allow = nil }, []string{"allow"}},
		{"inline", func(c *testConfig) { c.Shared.Email = "b@a.test" }, []string{"email"}},
		{"several, in order", func(c *testConfig) { c.MaxConns, c.Allow[0], c.Debug = 3, "b.test", true },
			[]string{"allow", "debug", "max_conns"}},
		{"nested", func(c *testConfig) { c.Names[0].CA = append(c.Names[0].CA, "letsencrypt") }, []string{"names"}},
		{"map", func(c *testConfig) { c.DNSSetting["zone"] = "b.test" }, []string{"dns_setting"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			next := base()
			tt.change(next)
			if got := Changed(base(), next); !slices.Equal(got, tt.want) {
				t.Errorf("Changed = %q, want %q", got, tt.want)
			}
		})
	}
	empty, none := &testConfig{Allow: []string{}, DNSSetting: map[string]string{}}, &testConfig{}
	if got := Changed(empty, none); got != nil {
		t.Errorf("Changed(empty lists, absent lists) = %q, want none", got)
	}
}

// TestPairsAsSettings: a list of NAME=URL items (its field's arg tag says
// so) given as NAME: URL settings is refused with the list to write.
func TestPairsAsSettings(t *testing.T) {
	type routes struct {
		Route   []string          `yaml:"route" arg:"NAME=URL"`
		Setting map[string]string `yaml:"setting" arg:"NAME=VALUE"`
	}
	for _, tt := range []struct{ name, text, want string }{
		{"mapping", "route: {a.test: 127.0.0.1:1, b.test: 'http://[::1]:2'}\n",
			`c.yaml:1: route: want a list of NAME=URL items, not NAME: URL settings: write route: ["a.test=127.0.0.1:1", "b.test=http://[::1]:2"]`},
		{"block mapping", "route:\n  a.test: 127.0.0.1:1\n",
			`c.yaml:2: route: want a list of NAME=URL items, not NAME: URL settings: write route: ["a.test=127.0.0.1:1"]`},
		{"list items", "route:\n  - b.test=127.0.0.1:2\n  - a.test: 127.0.0.1:1\n",
			`c.yaml:3: route: want a list of NAME=URL items, not NAME: URL settings: write route: ["b.test=127.0.0.1:2", "a.test=127.0.0.1:1"]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c routes
			if _, err := Decode("c.yaml", []byte(tt.text), &c, nil); err == nil || err.Error() != tt.want {
				t.Errorf("Decode(%q) = %v, want %s", tt.text, err, tt.want)
			}
		})
	}
	var c routes
	if _, err := Decode("c.yaml", []byte("route: [a.test=127.0.0.1:1]\nsetting: {zone: a.test}\n"), &c, nil); err != nil || len(c.Route) != 1 || c.Setting["zone"] != "a.test" {
		t.Errorf("Decode of the documented forms = %v, %q, %q", err, c.Route, c.Setting)
	}
}

// TestChanges: a list of strings tells the entries added and removed; a
// list only reordered, or another setting, tells its key only; LogAttrs
// gives KEY_added, KEY_removed and "changed", none for nothing changed.
func TestChanges(t *testing.T) {
	old := &testConfig{Allow: []string{"a.test", "b.test"}, Debug: true}
	for _, tt := range []struct {
		name  string
		next  *testConfig
		attrs string
	}{
		{"nothing", &testConfig{Allow: []string{"a.test", "b.test"}, Debug: true}, ""},
		{"added and removed", &testConfig{Allow: []string{"b.test", "c.test", "d.test"}, Debug: true},
			"allow_added=[c.test d.test] allow_removed=[a.test]"},
		{"removed all", &testConfig{Debug: true}, "allow_removed=[a.test b.test]"},
		{"reordered, and a scalar", &testConfig{Allow: []string{"b.test", "a.test"}, MaxConns: 2, Debug: true},
			"changed=[allow max_conns]"},
		{"both", &testConfig{Allow: []string{"a.test"}, Grace: time.Hour}, "allow_removed=[b.test] changed=[grace_period debug]"},
		{"URLs redacted", &testConfig{Allow: []string{"a.test", "b.test", "c.test=http://u:s3cret@h:1/", "https://u:s3cret@h/?token=t"}, Debug: true},
			"allow_added=[c.test=http://REDACTED@h:1/ https://REDACTED@h/]"},
		{"many", &testConfig{Allow: append([]string{"a.test", "b.test"}, manyNames(25)...), Debug: true},
			"allow_added=[" + strings.Join(manyNames(20), " ") + " … 5 more]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, a := range LogAttrs(Changes(old, tt.next)) {
				got = append(got, a.String())
			}
			if s := strings.Join(got, " "); s != tt.attrs {
				t.Errorf("LogAttrs(Changes) = %q, want %q", s, tt.attrs)
			}
		})
	}
}

// TestOnly: Only keeps the changes to the keys given, in their order,
// with their entries added and removed.
func TestOnly(t *testing.T) {
	old := &testConfig{Allow: []string{"a.test"}, Debug: true}
	next := &testConfig{Allow: []string{"b.test"}, Grace: time.Hour, MaxConns: 3}
	var got []string
	for _, a := range LogAttrs(Only(Changes(old, next), []string{"max_conns", "allow", "names"})) {
		got = append(got, a.String())
	}
	if s, want := strings.Join(got, " "), "allow_added=[b.test] allow_removed=[a.test] changed=[max_conns]"; s != want {
		t.Errorf("LogAttrs(Only(Changes)) = %q, want %q", s, want)
	}
	if cs := Only(Changes(old, next), nil); len(cs) != 0 {
		t.Errorf("Only of no key = %v, want none", cs)
	}
}

// manyNames returns n names n0.test, n1.test, ...
func manyNames(n int) []string {
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("n%d.test", i))
	}
	return names
}

// TestSecrets: the keys a document sets to a secret, an inline struct's
// and an alias's included; a URL key only when it carries a password.
func TestSecrets(t *testing.T) {
	type shared struct {
		Token string `yaml:"token" secret:"true" alias:"old_token"`
	}
	type config struct {
		Shared  shared `yaml:",inline"`
		Storage string `yaml:"storage" secret:"url"`
		Email   string `yaml:"email"`
	}
	ty := reflect.TypeFor[config]()
	for _, tt := range []struct {
		doc  string
		want []string
	}{
		{"email: a@b.test\nstorage: /var/lib/x\n", nil},
		{"token: t0123\n", []string{"token"}},
		{"old_token: t0123\n", []string{"old_token"}},
		{"storage: postgres://u:pw@127.0.0.1/db\ntoken: x\n", []string{"storage", "token"}},
		{"storage: postgres://u@127.0.0.1/db\n", nil},
		{"storage: redis://:pw@127.0.0.1:6379\n", []string{"storage"}},
		{"storage: [not, a, url]\n", nil},
		{"not yaml: [", nil},
		{"token: \"\"\nold_token:\nstorage: ''\n", nil}, // set to nothing: docs/config.md's example
	} {
		if got := Secrets([]byte(tt.doc), ty); !slices.Equal(got, tt.want) {
			t.Errorf("Secrets(%q) = %q, want %q", tt.doc, got, tt.want)
		}
	}
}

// TestSecretsGiven: the secret fields whose flags were given, inline ones
// included, and nothing for a non-secret flag or a secret not given.
func TestSecretsGiven(t *testing.T) {
	type shared struct {
		Token string `yaml:"metrics_token" secret:"true"`
		DB    string `yaml:"storage" secret:"url"`
	}
	type config struct {
		Shared shared `yaml:",inline"`
		Key    string `yaml:"tsig_key" secret:"true"`
		Addr   string `yaml:"listen"`
	}
	typ := reflect.TypeOf(config{})
	for _, tt := range []struct {
		set  []string
		want []string
	}{
		{[]string{"tsig-key", "metrics-token", "listen", "storage"}, []string{"metrics_token", "tsig_key"}},
		{[]string{"listen"}, nil},
		{nil, nil},
	} {
		set := map[string]bool{}
		for _, f := range tt.set {
			set[f] = true
		}
		if got := SecretsGiven(typ, set); !slices.Equal(got, tt.want) {
			t.Errorf("SecretsGiven(%v) = %v, want %v", tt.set, got, tt.want)
		}
	}
}

// TestExposed: a file holding a secret is exposed when other users may
// read it, or a group other than this process's; not at 0640 in this
// process's own group (the systemd unit's root:certkeeper 0640, which
// chmod 600 would lock the service out of). The fix keeps the file
// readable: chmod 600 for this user's file, else chgrp and chmod 640.
func TestExposed(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes say nothing of other users on Windows")
	}
	type config struct {
		Token string `yaml:"token" secret:"true"`
	}
	ty := reflect.TypeFor[config]()
	data := []byte("token: t0123\n")
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(file, -1, os.Getegid()); err != nil {
		t.Fatal(err)
	}
	check := func(mode os.FileMode, wantWho, wantFix string) {
		t.Helper()
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
		keys, e := Exposed(file, data, ty)
		if wantWho == "" {
			if keys != nil {
				t.Errorf("at %04o: exposed %q to %s, want not", mode, keys, e.Who)
			}
			return
		}
		if !slices.Equal(keys, []string{"token"}) || e.Who != wantWho || e.Mode != mode || e.Fix != wantFix {
			t.Errorf("at %04o: %q, %+v; want [token] readable by %s, fix %q", mode, keys, e, wantWho, wantFix)
		}
	}
	chmod600 := "chmod 600 " + file
	check(0o600, "", "")
	check(0o640, "", "") // this process's group
	check(0o644, "other users", chmod600)
	check(0o604, "other users", chmod600)
	if _, e := Exposed(file, []byte("other: 1\n"), ty); e.Who != "" {
		t.Errorf("a file without secrets exposed: %+v", e)
	}

	// Another group (root may give any; another user one of its own).
	other := -1
	if os.Geteuid() == 0 {
		other = os.Getegid() + 1
	} else if groups, err := os.Getgroups(); err == nil {
		for _, g := range groups {
			if g != os.Getegid() {
				other = g
			}
		}
	}
	if other < 0 {
		t.Skip("this user belongs to no group but its own: cannot give the file another")
	}
	if err := os.Chown(file, -1, other); err != nil {
		t.Fatal(err)
	}
	check(0o600, "", "")
	if os.Geteuid() != 0 {
		check(0o640, "group "+fileowner.GroupName(other), chmod600)
		return
	}
	// Root gave the file that group: the service's root:certkeeper 0640.
	check(0o640, "", "")
	// Owned by another user (root's file read by the service): chmod 600
	// would lock the reader out.
	if err := os.Chown(file, os.Geteuid()+1, -1); err != nil {
		t.Fatal(err)
	}
	own := fileowner.GroupName(os.Getegid())
	check(0o644, "other users", "chgrp "+own+" "+file+" && chmod 640 "+file)
}
