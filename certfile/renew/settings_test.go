package renew

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/certfile"
)

func fullSettings() Settings {
	return Settings{
		CA: "https://127.0.0.1:14000/dir", CARoots: "/etc/certkeeper/roots.pem", Email: "ops@a.example",
		Profile: "shortlived", KeyType: "rsa2048", PreferredChain: "ISRG Root X1",
		Storage: "/var/lib/certkeeper", StorageKeyFile: "/etc/certkeeper/storage.key", StoragePasswordFile: "/etc/certkeeper/db.pw",
		Challenge: "dns-01", HTTPAddr: ":8080", TLSAddr: "127.0.0.1:5001",
		DNS: "rfc2136", DNSServer: "127.0.0.1:53", TSIGKeyFile: "/etc/certkeeper/tsig.key",
		DNSExec: "/usr/local/bin/dns", DNSExecMode: "raw", DNSAPIURL: "http://127.0.0.1:8081",
		DNSAPIKeyFile: "/etc/certkeeper/pdns.key", DNSResolvers: []string{"127.0.0.1:53", "[::1]:53"},
		DNSZones: []string{"a.example"}, DNSCheckPort: "5353", DNSTimeout: "2m", DNSNoCheck: "true",
		DeployHook: `echo "$CERTKEEPER_NAME" >> /var/log/deploy.log && x=1 true`,
		PreHook:    "systemctl stop nginx", PostHook: "systemctl start nginx",
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	for _, s := range []Settings{{}, {CA: "letsencrypt"}, fullSettings()} {
		data, err := s.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%+v): %v", s, err)
		}
		got, err := ParseSettings(strings.NewReader(string(data)))
		if err != nil {
			t.Fatalf("ParseSettings of\n%s: %v", data, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("round trip of\n%s= %+v, want %+v", data, got, s)
		}
	}
}

func TestParseSettings(t *testing.T) {
	got, err := ParseSettings(strings.NewReader(`
# a comment
version = 1
   ca=https://ca.example/dir   
deploy_hook = a=b c
dns_resolver = 127.0.0.1:53

dns_resolver = 127.0.0.2:53
`))
	want := Settings{CA: "https://ca.example/dir", DeployHook: "a=b c", DNSResolvers: []string{"127.0.0.1:53", "127.0.0.2:53"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSettings = %+v, %v; want %+v", got, err, want)
	}
}

func TestParseSettingsErrors(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"no equals", "ca https://x\n", "line 1: want key = value"},
		{"unknown key", "\nchalenge = http-01\n", `line 2: unknown renewal setting "chalenge"`},
		{"secret", "tsig_key = k:hmac-sha256:c2VjcmV0\n", "line 1: tsig_key is a secret and is never kept in renewal settings: name the file that holds it with tsig_key_file"},
		{"eab secret", "eab_hmac = x\n", "line 1: eab_hmac is a secret"},
		{"twice", "ca = a\nca = b\n", "line 2: ca given twice"},
		{"version", "version = 2\n", `line 1: version "2": this certkeeper reads version 1`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSettings(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSettings(%q) = %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestSettingsSetRefusesLineBreaks(t *testing.T) {
	var s Settings
	if err := s.Set("deploy_hook", "true\nca = https://evil.example/dir"); err == nil {
		t.Error("Set accepted a value with a line break, which would add a line to the file")
	}
	s.PostHook = "a\nb"
	if _, err := s.MarshalText(); err == nil {
		t.Error("MarshalText wrote a value with a line break")
	}
}

func TestSettingsOverride(t *testing.T) {
	s := Settings{CA: "a", Profile: "p", DNSZones: []string{"x", "y"}, PostHook: "h"}
	s.Override(Settings{CA: "b", DNSZones: []string{"z"}})
	want := Settings{CA: "b", Profile: "p", DNSZones: []string{"z"}, PostHook: "h"}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Override = %+v, want %+v", s, want)
	}
}

func TestSaveLoadSettings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "renewal", "a.example.conf")
	if _, err := LoadSettings(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadSettings of an absent file = %v, want fs.ErrNotExist", err)
	}
	s := fullSettings()
	if err := SaveSettings(path, s); err != nil {
		t.Fatal(err)
	}
	if err := SaveSettings(path, s); err != nil { // replaces
		t.Fatal(err)
	}
	got, err := LoadSettings(path)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("LoadSettings = %+v, %v; want %+v", got, err, s)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the renewal directory holds %d entries, want the file alone (a temporary file left?)", len(entries))
	}
	if runtime.GOOS == "windows" {
		return
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Dir(path)); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	for _, mode := range []fs.FileMode{0o620, 0o602, 0o666} {
		os.Chmod(path, mode)
		_, err := LoadSettings(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("LoadSettings of a %04o file = %v, want a refusal naming chmod 600", mode, err)
		}
	}
	os.Chmod(path, 0o640) // readable by the group is fine: no secrets
	if _, err := LoadSettings(path); err != nil {
		t.Errorf("LoadSettings of a 0640 file: %v", err)
	}

	link := filepath.Join(dir, "renewal", "b.example.conf")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSettings(link); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("LoadSettings of a symbolic link = %v, want a refusal", err)
	}

	if os.Getuid() == 0 {
		if err := os.Chown(path, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadSettings(path); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
			t.Errorf("LoadSettings of another user's file = %v, want a refusal", err)
		}
	}
}

// FuzzParseSettings: whatever parses writes back to the same settings.
func FuzzParseSettings(f *testing.F) {
	data, _ := fullSettings().MarshalText()
	f.Add(string(data))
	f.Add("ca = x\ndns_zone = a\ndns_zone = b\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSettings(strings.NewReader(in))
		if err != nil {
			return
		}
		out, err := s.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText of parsed %q: %v", in, err)
		}
		again, err := ParseSettings(strings.NewReader(string(out)))
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", in, again, err, s)
		}
	})
}

// TestParseSettingsRenamedKey: a file written before --tls-addr became
// --tls-alpn-addr still reads, its tls_addr taken as tls_alpn_addr.
func TestParseSettingsRenamedKey(t *testing.T) {
	s, err := ParseSettings(strings.NewReader("version = 1\nchallenge = tls-alpn-01\ntls_addr = 127.0.0.1:5001\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.TLSAddr != "127.0.0.1:5001" {
		t.Errorf("TLSAddr = %q, want 127.0.0.1:5001", s.TLSAddr)
	}
	var keys []string
	s.Values(func(k, _ string) { keys = append(keys, k) })
	if !slices.Contains(keys, "tls_alpn_addr") || slices.Contains(keys, "tls_addr") {
		t.Errorf("keys written = %v, want tls_alpn_addr and not tls_addr", keys)
	}
}

// TestSettingsAbsolute: the settings naming files become absolute, the
// rest (and empty ones) stay as they are.
func TestSettingsAbsolute(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(wd, "roots.pem")
	s := Settings{CARoots: "roots.pem", TSIGKeyFile: abs, DNSExec: "hook.sh", Webroot: "www",
		DNSSettingFiles: []string{"token=token.txt"}}
	s.Absolute()
	want := Settings{CARoots: abs, TSIGKeyFile: abs, DNSExec: "hook.sh", Webroot: filepath.Join(wd, "www"),
		DNSSettingFiles: []string{"token=" + filepath.Join(wd, "token.txt")}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Absolute() gave %+v, want %+v", s, want)
	}
	// A --dns-exec PROGRAM given as a path is one too (trial 19: "./hook.sh"
	// failed from cron); a bare name is looked up in $PATH.
	for _, exec := range []string{"./hook.sh", "bin/hook"} {
		s := Settings{DNSExec: exec}
		s.Absolute()
		if want := filepath.Join(wd, exec); s.DNSExec != want {
			t.Errorf("Absolute() with DNSExec %q gave %q, want %q", exec, s.DNSExec, want)
		}
	}
}

// TestPairSettings: the settings of the pair a certificate file belongs
// to, with their file; none for a certificate file of no pair.
func TestPairSettings(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"certs/a.test.pem", "private/a.test.key"} { // a pair, as far as its names go
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	certFile := filepath.Join(dir, "certs", "a.test.pem")
	if s, path, err := PairSettings(certFile); err != nil || path != "" || !s.IsZero() {
		t.Errorf("PairSettings without settings = %+v, %q, %v; want none", s, path, err)
	}
	want := Settings{CA: "https://ca.test/dir", CARoots: "/roots.pem"}
	conf := filepath.Join(dir, "renewal", "a.test.conf")
	if err := SaveSettings(conf, want); err != nil {
		t.Fatal(err)
	}
	if s, path, err := PairSettings(certFile); err != nil || path != conf || s.CA != want.CA || s.CARoots != want.CARoots {
		t.Errorf("PairSettings = %+v, %q, %v; want %+v from %s", s, path, err, want, conf)
	}
	other := filepath.Join(t.TempDir(), "a.test.pem")
	if s, path, err := PairSettings(other); err != nil || path != "" || !s.IsZero() {
		t.Errorf("PairSettings of a file of no pair = %+v, %q, %v; want none", s, path, err)
	}
}

// TestRememberedStorage: the storage the certificates of a directory
// remember, one for all of them or a conflict naming each; with names,
// only theirs count, unless they remember none (a migration trial's
// cert renew --want FILE -d NAME opened the default storage); a remembered storage is not a settings change for a
// certificate whose file names none.
func TestRememberedStorage(t *testing.T) {
	dir := certfile.Dir(t.TempDir())
	for name, st := range map[string]string{"a.test": "/srv/st1", "b.test": "/srv/st1", "c.test": "redis://127.0.0.1:6379/0", "d.test": ""} {
		selfSignedPair(t, dir, name, name)
		path, err := SettingsPath(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := SaveSettings(path, Settings{CA: "local", Storage: st}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := RememberedStorage(dir)
	var cerr *StorageConflictError
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "/srv/st1 (a.test, b.test); redis://127.0.0.1:6379/0 (c.test)") {
		t.Errorf("RememberedStorage of two storages = %v", err)
	}
	if s, err := RememberedStorage(dir, "a.test", "B.TEST", "d.test"); err != nil || s.Storage != "/srv/st1" {
		t.Errorf("RememberedStorage(a.test, b.test, d.test) = %q, %v; want /srv/st1", s.Storage, err)
	}
	// A name whose certificate remembers none, or that has no files yet
	// (a want entry), takes the directory's: here two, a conflict.
	if _, err := RememberedStorage(dir, "d.test"); !errors.As(err, &cerr) {
		t.Errorf("RememberedStorage(d.test) = %v, want the directory's conflict", err)
	}
	one := certfile.Dir(t.TempDir())
	for name, st := range map[string]string{"a.test": "/srv/st1", "d.test": ""} {
		selfSignedPair(t, one, name, name)
		path, _ := SettingsPath(one, name)
		if err := SaveSettings(path, Settings{CA: "local", Storage: st}); err != nil {
			t.Fatal(err)
		}
	}
	for _, names := range [][]string{{"d.test"}, {"new.test"}} {
		if s, err := RememberedStorage(one, names...); err != nil || s.Storage != "/srv/st1" {
			t.Errorf("RememberedStorage(%s) = %q, %v; want the directory's /srv/st1", names, s.Storage, err)
		}
	}
	prev := &Previous{Names: []string{"d.test"}, Settings: Settings{CA: "local"}}
	if c := prev.Changes([]string{"d.test"}, Settings{CA: "local", Storage: "/srv/st1"}); c != "" {
		t.Errorf("a storage remembered now is a change: %q", c)
	}
	prev.Settings.Storage = "/srv/st2"
	if c := prev.Changes([]string{"d.test"}, Settings{CA: "local", Storage: "/srv/st1"}); !strings.Contains(c, "storage /srv/st2 -> /srv/st1") {
		t.Errorf("another storage: changes %q", c)
	}
}

// TestStorageWithoutPassword: a storage URL's password is never kept in
// the renewal settings (a secret, as tsig_key is): the URL is kept
// without it, its user name included.
func TestStorageWithoutPassword(t *testing.T) {
	var s Settings
	for v, want := range map[string]string{
		"redis://:s3cret@10.0.0.5:6379/0":     "redis://10.0.0.5:6379/0",
		"rediss://app:s3cret@r.internal/1":    "rediss://app@r.internal/1",
		"postgres://certkeeper@db/certkeeper": "postgres://certkeeper@db/certkeeper",
		"/var/lib/certkeeper":                 "/var/lib/certkeeper",
	} {
		if err := s.Set("storage", v); err != nil || s.Storage != want {
			t.Errorf("Set(storage, %q): %q, %v; want %q", v, s.Storage, err, want)
		}
	}
}

// TestSettingsInAnotherUsersDirectory: a settings file of this user's,
// private, in a renewal/ directory another user owns is refused (a
// security trial had root write such a file and renamed it there: its
// pre_hook ran as root), and so is a Renewer's run on an out-dir another
// user owns, before anything is read from it. Needs root.
func TestSettingsInAnotherUsersDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "renewal", "a.example.conf")
	if err := SaveSettings(path, fullSettings()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Dir(path), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSettings(path); err == nil || !strings.Contains(err.Error(), "belongs to user 65534") {
		t.Errorf("LoadSettings in nobody's renewal/ = %v, want a refusal", err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	r := &Renewer{Dir: certfile.Dir(dir)}
	if _, err := r.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "belongs to user 65534") {
		t.Errorf("Run on nobody's out-dir = %v, want a refusal", err)
	}
}

// TestSaveSettingsLeavesCertbots: certbot's renewal file, which has the
// name of certkeeper's settings file, is not replaced (a migration trial
// pointed cert renew's --out-dir at /etc/letsencrypt, and certbot then
// skipped the lineage whose file was replaced).
func TestSaveSettingsLeavesCertbots(t *testing.T) {
	path := filepath.Join(t.TempDir(), "renewal", "a.test.conf")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	certbot := "# renew_before_expiry = 30 days\nversion = 2.11.0\narchive_dir = /etc/letsencrypt/archive/a.test\n\n[renewalparams]\nauthenticator = webroot\n"
	if err := os.WriteFile(path, []byte(certbot), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SaveSettings(path, Settings{CA: "local"}); err == nil || !strings.Contains(err.Error(), "certbot's renewal file") {
		t.Errorf("SaveSettings over certbot's file = %v, want a refusal", err)
	}
	if got, _ := os.ReadFile(path); string(got) != certbot {
		t.Errorf("certbot's file was changed:\n%s", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for range 2 { // certkeeper's own is rewritten
		if err := SaveSettings(path, Settings{CA: "local"}); err != nil {
			t.Fatal(err)
		}
	}
}
