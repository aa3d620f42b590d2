package cli

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestSystemdUnit: systemd-analyze verify passes on deploy/certkeeper.service
// and on the renewal timer with its service (deploy/certkeeper-renew.*),
// their ExecStart pointing at the built binary; the proxy's gives no
// --log-level, so proxy.yaml's log_level is not overridden.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testsvc.Unavailable(t, "systemd-analyze", "install it: apt-get install systemd", err)
	}
	bin, err := filepath.Abs(binary)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	for _, name := range []string{"certkeeper.service", "certkeeper-renew.service", "certkeeper-renew.timer"} {
		unit, err := os.ReadFile(filepath.Join("..", "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".service") && !strings.Contains(string(unit), "ExecStart=/usr/local/bin/certkeeper ") {
			t.Fatalf("%s's ExecStart no longer starts /usr/local/bin/certkeeper", name)
		}
		if name == "certkeeper.service" && strings.Contains(string(unit), "--log-level") {
			t.Errorf("%s gives --log-level, which overrides proxy.yaml's log_level (the proxy's default is info already)", name)
		}
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/certkeeper", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, append([]string{"verify"}, files...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The renewal service's command is one cert renew accepts.
	var args []string
	for line := range strings.Lines(string(mustRead(t, filepath.Join("..", "deploy", "certkeeper-renew.service")))) {
		if cmd, ok := strings.CutPrefix(line, "ExecStart=/usr/local/bin/certkeeper "); ok {
			args = strings.Fields(cmd)
		}
	}
	if slices.Contains(args, "--out-dir") {
		t.Errorf("the timer's command %q names an --out-dir: it renews cert issue's default, as the README's commands write", args)
	}
	outDir := t.TempDir()
	r := ck(t, time.Minute, append(args, "--out-dir", outDir, "--storage", t.TempDir())...)
	if r.code != 1 || !strings.Contains(r.stderr, "nothing to renew: no certificate pairs (certs/NAME.pem with private/NAME.key) in "+outDir) {
		t.Errorf("the timer's command on an empty --out-dir: exit %d, want the failure naming it\n%s", r.code, r.stderr)
	}
}

// TestNotifyReady: under a $NOTIFY_SOCKET, the proxy tells systemd
// READY=1 and its PID once it serves (Type=notify).
func TestNotifyReady(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	cmd := startProxy(t, "--tls-addr", "127.0.0.1:0", "--storage", t.TempDir())
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification within 10 s: %v", err)
	}
	msg := string(buf[:n])
	if !strings.Contains(msg, "READY=1") || !strings.Contains(msg, "MAINPID="+strconv.Itoa(cmd.Process.Pid)) {
		t.Errorf("notification %q, want READY=1 and MAINPID=%d", msg, cmd.Process.Pid)
	}
}

// TestLaunchdPlist: deploy/com.certkeeper.proxy.plist is well-formed XML
// that runs "certkeeper proxy", with no --log-level to override
// proxy.yaml's log_level.
func TestLaunchdPlist(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "deploy", "com.certkeeper.proxy.plist"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Dict struct {
			Keys    []string `xml:"key"`
			Strings []string `xml:"string"`
			Arrays  []struct {
				Strings []string `xml:"string"`
			} `xml:"array"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("the plist is not well-formed XML: %v", err)
	}
	if len(doc.Dict.Arrays) == 0 || len(doc.Dict.Arrays[0].Strings) < 2 || doc.Dict.Arrays[0].Strings[1] != "proxy" {
		t.Errorf("ProgramArguments = %+v, want certkeeper proxy ...", doc.Dict.Arrays)
	} else if slices.Contains(doc.Dict.Arrays[0].Strings, "--log-level") {
		t.Errorf("ProgramArguments %q give --log-level, which overrides proxy.yaml's log_level (the proxy's default is info already)", doc.Dict.Arrays[0].Strings)
	}
}

// TestServiceElsewhere: outside Windows, "certkeeper service" says where
// to look instead. (The Windows code is built for GOOS=windows in CI.)
func TestServiceElsewhere(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("this is Windows")
	}
	r := ck(t, 30*time.Second, "service", "install", "--", "proxy")
	if r.code != 1 || !strings.Contains(r.stderr, "deploy/certkeeper.service") {
		t.Errorf("service install: exit %d\n%s", r.code, r.stderr)
	}
}

// TestJSONLogs: with --log-format json every line on stderr is a JSON
// object with time, level and msg, the proxy's own messages included.
func TestJSONLogs(t *testing.T) {
	_, logs := startProxyAt(t, binary, "--tls-addr", "127.0.0.1:0", "--storage", t.TempDir(), "--log-format", "json", "--log-level", "info")
	lines := strings.Split(strings.TrimSpace(logs()), "\n")
	if len(lines) < 2 {
		t.Fatalf("only %d lines of logs:\n%s", len(lines), logs())
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not JSON: %q: %v", line, err)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("record without %q: %s", k, line)
			}
		}
	}
}

// TestStateDirectoryStorage: a command run by systemd with
// StateDirectory=certkeeper ($STATE_DIRECTORY) keeps its state there when
// no --storage is given, as the shipped unit's proxy does, wherever its
// user's home is.
func TestStateDirectoryStorage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certkeeper")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STATE_DIRECTORY", dir)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", "")
	r := ck(t, 30*time.Second, "ca", "root")
	if r.code != 0 || !strings.Contains(r.stdout, "BEGIN CERTIFICATE") {
		t.Fatalf("ca root under systemd: exit %d\n%s", r.code, r.stderr)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
		t.Errorf("the local CA was not kept in $STATE_DIRECTORY %s: %v, %v", dir, entries, err)
	}
}
