package main

import (
	"os"
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
	args := []string{"deploy", "--format", "haproxy", "--out", out, "--storage", storageDir,
		"--check", haproxy + " -c -q -f " + cfg, "--reload", "echo reload >> " + reloads}
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
	if r := ck(t, time.Minute, "deploy", "--format", "apache", "--out", out); r.code != 2 {
		t.Errorf("unknown format: exit %d, want 2\n%s", r.code, r.stderr)
	}
}

// TestProxyDeploy: the proxy's deploy mode writes a certificate as soon as
// it is obtained, and again when the proxy renews it, reloading each time.
func TestProxyDeploy(t *testing.T) {
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{
		"default": {Description: "15 seconds", ValidityPeriod: 15 * time.Second},
	}})
	dir := t.TempDir()
	out, reloads := filepath.Join(dir, "live"), filepath.Join(dir, "reloads")
	startProxy(t, "--tls-addr", "127.0.0.1:"+strconv.Itoa(ca.TLSPort()), "--backend", newBackend(t, "ok").url,
		"--allow", "dep.test", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--profile", "default",
		"--storage", t.TempDir(), "--deploy-format", "pem", "--deploy-out", out,
		"--deploy-check", "test -s \"$CERTKEEPER_DEPLOY_DIR/dep.test/privkey.pem\"", "--deploy-reload", "echo reload >> "+reloads)
	first := serialOf(t, ca.TLSPort(), "dep.test", ca.IssuingRootPool(t))
	certFile := filepath.Join(out, "dep.test", "cert.pem")
	waitFor(t, 10*time.Second, "the obtained certificate deployed", func() bool {
		_, err := os.Stat(certFile)
		return err == nil && leafOf(t, certFile).SerialNumber.String() == first
	})
	waitFor(t, 40*time.Second, "the renewed certificate deployed", func() bool {
		return leafOf(t, certFile).SerialNumber.String() != first
	})
	if got := serialOf(t, ca.TLSPort(), "dep.test", ca.IssuingRootPool(t)); got != leafOf(t, certFile).SerialNumber.String() {
		t.Errorf("the proxy serves %s, the deployed file holds %s", got, leafOf(t, certFile).SerialNumber)
	}
	// The files are in place before the check and the reload run.
	waitFor(t, 10*time.Second, "a reload per deployment", func() bool {
		data, _ := os.ReadFile(reloads)
		return strings.Count(string(data), "reload") == 2
	})
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
	conf := "deploy_format: haproxy\ndeploy_out: /etc/haproxy/certs\ndeploy_check: haproxy -c -f x.cfg\ndeploy_reload: systemctl reload haproxy\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := &proxyConfig{Deploy: deployFlags{Out: "/tmp/other"}}
	cfg, err := loadProxyConfig(file, flags, map[string]bool{"deploy-out": true})
	if err != nil {
		t.Fatal(err)
	}
	want := deployFlags{Format: "haproxy", Out: "/tmp/other", Check: "haproxy -c -f x.cfg", Reload: "systemctl reload haproxy"}
	if cfg.Deploy != want {
		t.Errorf("deploy settings = %+v, want %+v", cfg.Deploy, want)
	}
}
