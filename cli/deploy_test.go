package cli

import (
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestDeployCommand: the one-shot deploy writes haproxy's layout from
// storage, checked by the real haproxy -c, and a second run with nothing
// new changes nothing and reloads nothing.
func TestDeployCommand(t *testing.T) {
	haproxy := testsvc.LookPath(t, "haproxy", "install it: apt-get install haproxy")
	storageDir, dir := t.TempDir(), t.TempDir()
	issueLocal(t, storageDir, "d1.test")
	issueLocal(t, storageDir, "d2.test")
	out := filepath.Join(dir, "certs")
	cfg := filepath.Join(dir, "haproxy.cfg")
	conf := "defaults\n\tmode http\n\ttimeout connect 5s\n\ttimeout client 5s\n\ttimeout server 5s\n" +
		"frontend fe\n\tbind 127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t)) + " ssl crt-list " + filepath.Join(out, "crt-list") + "\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	reloads := filepath.Join(dir, "reloads")
	args := []string{"deploy", "--format", "haproxy", "--out-dir", out, "--storage", storageDir,
		"--check-hook", haproxy + " -c -q -f " + cfg, "--post-hook", "echo reload >> " + reloads}
	if r := ck(t, time.Minute, args...); r.code != 0 || !strings.Contains(r.stdout, "deployed 2 certificates") {
		t.Fatalf("deploy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, f := range []string{"d1.test.pem", "d2.test.pem", "crt-list"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if r := ck(t, time.Minute, args...); r.code != 0 || !strings.Contains(r.stdout, "unchanged") {
		t.Errorf("second deploy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := strings.Count(string(mustRead(t, reloads)), "reload"); got != 1 {
		t.Errorf("%d reloads for two runs with one change, want 1", got)
	}
	if r := ck(t, time.Minute, "deploy", "--format", "apache", "--out-dir", out); r.code != 2 {
		t.Errorf("unknown format: exit %d, want 2\n%s", r.code, r.stderr)
	}
}

// TestProxyDeploy: the proxy's deploy mode hands haproxy (real, in
// master-worker mode, on the crt-list deploy writes) the certificate the
// proxy obtained, checked with haproxy -c, and after the proxy renews it
// from Pebble, haproxy serves the new serial.
func TestProxyDeploy(t *testing.T) {
	haproxy := testsvc.LookPath(t, "haproxy", "install it: apt-get install haproxy")
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{
		"default": {Description: "15 seconds", ValidityPeriod: 15 * time.Second},
	}})
	dir := t.TempDir()
	out, cfg, pidFile := filepath.Join(dir, "certs"), filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "haproxy.pid")
	addr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	conf := "defaults\n\tmode http\n\ttimeout connect 5s\n\ttimeout client 5s\n\ttimeout server 5s\n" +
		"frontend fe\n\tbind " + addr + " ssl crt-list " + filepath.Join(out, "crt-list") + "\n" +
		"\thttp-request return status 200 content-type text/plain string ok\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// haproxy starts once the first certificate is deployed; a reload
	// before that (no pid file yet) starts nothing.
	reloads := filepath.Join(dir, "reloads")
	reload := "echo reload >> " + reloads + "; test -s " + pidFile + " && kill -USR2 $(cat " + pidFile + ") || true"
	startProxy(t, "--tls-addr", "127.0.0.1:"+strconv.Itoa(ca.TLSPort()), "--backend", newBackend(t, "ok").url,
		"--allow", "dep.test", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--profile", "default",
		"--storage", t.TempDir(), "--deploy-format", "haproxy", "--deploy-out-dir", out,
		"--deploy-check-hook", haproxy+" -c -q -f "+cfg, "--deploy-post-hook", reload)
	roots := ca.IssuingRootPool(t)
	first := serialOf(t, ca.TLSPort(), "dep.test", roots)
	waitFor(t, 10*time.Second, "the obtained certificate deployed, checked and reloaded", func() bool {
		_, err := os.Stat(reloads)
		return err == nil
	})
	proc, err := testsvc.StartProcess(t, exec.Command(haproxy, "-W", "-db", "-f", cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(proc.Pid())), 0o600); err != nil {
		t.Fatal(err)
	}
	haproxyPort, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	if err := proc.WaitReady(20*time.Second, func(context.Context) error {
		_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "dep.test", RootCAs: roots})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := serialOf(t, haproxyPort, "dep.test", roots); got != first {
		t.Fatalf("haproxy serves %s, the proxy %s", got, first)
	}
	start := time.Now()
	waitFor(t, 40*time.Second, "haproxy serving the renewed certificate", func() bool {
		return serialOf(t, haproxyPort, "dep.test", roots) != first
	})
	t.Logf("haproxy served the renewal %v after the first certificate was checked", time.Since(start).Round(time.Millisecond))
	if got, want := serialOf(t, haproxyPort, "dep.test", roots), serialOf(t, ca.TLSPort(), "dep.test", roots); got != want {
		t.Errorf("haproxy serves %s, the proxy %s", got, want)
	}
}

// waitFor polls cond every 100 ms until it holds, failing t after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProxyDeployConfig: the deploy settings have config keys, and flags
// given too win.
func TestProxyDeployConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "proxy.yaml")
	conf := "deploy_format: haproxy\ndeploy_out_dir: /etc/haproxy/certs\ndeploy_check_hook: haproxy -c -f x.cfg\ndeploy_post_hook: systemctl reload haproxy\ndeploy_group: www-data\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := &proxyConfig{engineConfig: engineConfig{Deploy: deployFlags{Out: "/tmp/other"}}}
	cfg, err := loadProxyConfig(&source{file: file, set: map[string]bool{"deploy-out-dir": true}}, flags)
	if err != nil {
		t.Fatal(err)
	}
	want := deployFlags{Format: "haproxy", Out: "/tmp/other", Check: "haproxy -c -f x.cfg", Reload: "systemctl reload haproxy", Group: "www-data"}
	if cfg.Deploy != want {
		t.Errorf("deploy settings = %+v, want %+v", cfg.Deploy, want)
	}
}

// TestDeployGroup: the nginx layout without --group is warned about (its
// workers read the files as another user: certdeploy's TestNginxWorkers);
// --group makes the files group-readable; an unknown group is a usage
// error naming the flag, in deploy and in the proxy's --check-config.
func TestDeployGroup(t *testing.T) {
	storageDir, dir := t.TempDir(), t.TempDir()
	issueLocal(t, storageDir, "g.test")
	out := filepath.Join(dir, "nginx")
	args := []string{"deploy", "--format", "nginx", "--out-dir", out, "--storage", storageDir}
	if r := ck(t, time.Minute, args...); r.code != 0 || !strings.Contains(r.stderr, "give --group with their group") {
		t.Errorf("deploy --format nginx without --group: exit %d, want 0 and the warning\n%s", r.code, r.stderr)
	}
	group := strconv.Itoa(os.Getegid()) // a group this user may always give
	if r := ck(t, time.Minute, append(args, "--group", group)...); r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Errorf("deploy --group %s: exit %d\n%s%s", group, r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(out, "g.test", "privkey.pem")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("privkey.pem with --group: %v, %v; want mode 0640", fi, err)
	}
	for _, args := range [][]string{
		append(args, "--group", "no-such-group-certkeeper"),
		{"proxy", "--check-config", "--ca", "local", "--allow", "g.test", "--storage", storageDir,
			"--deploy-format", "nginx", "--deploy-out-dir", out, "--deploy-group", "no-such-group-certkeeper"},
	} {
		r := ck(t, time.Minute, args...)
		flag := "--group"
		if args[0] == "proxy" {
			flag = "--deploy-group"
		}
		if r.code == 0 || !strings.Contains(r.stderr, flag+`: no group "no-such-group-certkeeper" on this host`) {
			t.Errorf("%s with an unknown group: exit %d, want the error naming %s\n%s", args[0], r.code, flag, r.stderr)
		}
	}
}
