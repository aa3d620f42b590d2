package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
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

// This file runs the real ACME clients certkeeper imports from (certbot,
// lego, dehydrated), each obtaining a certificate from Pebble as it would
// from Let's Encrypt, so the import tests read state those tools wrote.

// runTool runs a foreign ACME client, bounded, and fails t with its output
// if it fails.
func runTool(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	path := testsvc.LookPath(t, name, "install it: apt-get install "+name)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s: %v", name, args[len(args)-1], time.Since(start).Round(time.Millisecond))
}

// runCertbot has certbot obtain a certificate for names from ca
// (standalone http-01 on the port Pebble validates) and returns its
// config dir.
func runCertbot(t *testing.T, ca *testca.CA, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"certonly", "--standalone", "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
		"--server", ca.DirectoryURL(), "--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"),
		"--logs-dir", filepath.Join(dir, "logs"), "--http-01-port", strconv.Itoa(ca.HTTPPort()), "--http-01-address", "127.0.0.1"}
	for _, n := range names {
		args = append(args, "-d", n)
	}
	runTool(t, []string{"REQUESTS_CA_BUNDLE=" + ca.ListenerRootFile()}, "certbot", args...)
	return filepath.Join(dir, "config")
}

// runLego has lego obtain a certificate for names from ca and returns its
// --path.
func runLego(t *testing.T, ca *testca.CA, email string, names ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lego")
	args := []string{"--server", ca.DirectoryURL(), "--accept-tos", "--email", email, "--path", dir,
		"--http", "--http.port", "127.0.0.1:" + strconv.Itoa(ca.HTTPPort())}
	for _, n := range names {
		args = append(args, "-d", n)
	}
	runTool(t, []string{"LEGO_CA_CERTIFICATES=" + ca.ListenerRootFile()}, "lego", append(args, "run")...)
	return dir
}

// runDehydrated has dehydrated obtain a certificate for names from ca,
// its http-01 files served from a WELLKNOWN directory by a small HTTP
// server on the port Pebble validates, and returns its BASEDIR.
func runDehydrated(t *testing.T, ca *testca.CA, email string, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	base, wellknown := filepath.Join(dir, "dehydrated"), filepath.Join(dir, "wellknown")
	for _, d := range []string{base, wellknown} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort())))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.StripPrefix("/.well-known/acme-challenge/", http.FileServer(http.Dir(wellknown))),
		ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	config := filepath.Join(dir, "config")
	conf := "CA=" + ca.DirectoryURL() + "\nBASEDIR=" + base + "\nWELLKNOWN=" + wellknown +
		"\nCONTACT_EMAIL=" + email + "\nKEY_ALGO=prime256v1\nKEYSIZE=2048\nCHALLENGETYPE=http-01\n"
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"CURL_CA_BUNDLE=" + ca.ListenerRootFile()}
	// --cron with --accept-terms registers the account on the way.
	args := []string{"--config", config, "--cron", "--accept-terms"}
	for _, n := range names {
		args = append(args, "-d", n)
	}
	runTool(t, env, "dehydrated", args...)
	return base
}

// runCertMagic has a real CertMagic (internal/testdata/certmagicgen, built
// in its own module) obtain a certificate for name from ca and returns its
// file storage directory.
func runCertMagic(t *testing.T, ca *testca.CA, email, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "certmagicgen")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "internal", "testdata", "certmagicgen")
	if out, err := build.CombinedOutput(); err != nil {
		testsvc.Unavailable(t, "CertMagic (module github.com/caddyserver/certmagic)",
			"the Go module proxy must be reachable, or the module in the module cache", fmt.Errorf("%w: %s", err, out))
	}
	dir := filepath.Join(t.TempDir(), "caddy")
	cmd := exec.CommandContext(ctx, bin, "-ca", ca.DirectoryURL(), "-roots", ca.ListenerRootFile(), "-storage", dir,
		"-http-port", strconv.Itoa(ca.HTTPPort()), "-email", email, "-d", name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("certmagicgen: %v\n%s", err, out)
	}
	return dir
}
