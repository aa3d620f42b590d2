package truststore

import (
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// linuxAnchors are the anchor directories of the Linux families, each with
// the tool that rebuilds the bundles from it; the first whose directory and
// tool both exist is used.
func linuxAnchors() []anchorDir {
	return []anchorDir{
		{dir: "/usr/local/share/ca-certificates", tool: "update-ca-certificates"},                           // Debian, Ubuntu, Alpine
		{dir: "/etc/pki/ca-trust/source/anchors", tool: "update-ca-trust", args: []string{"extract"}},       // Fedora, RHEL, CentOS
		{dir: "/etc/ca-certificates/trust-source/anchors", tool: "trust", args: []string{"extract-compat"}}, // Arch
		{dir: "/usr/share/pki/trust/anchors", tool: "update-ca-certificates"},                               // openSUSE
	}
}

// freebsdAnchors is FreeBSD's directory of local trust anchors.
func freebsdAnchors() anchorDir {
	return anchorDir{dir: "/usr/local/share/certs", tool: "certctl", args: []string{"rehash"}}
}

// systemStore installs (or removes) root in the operating system's store.
func systemStore(ctx context.Context, root *x509.Certificate, install bool) Result {
	switch runtime.GOOS {
	case "darwin":
		return macKeychain(ctx, root, install)
	case "windows":
		return windowsRoot(ctx, root, install)
	case "freebsd":
		return updateAnchors(ctx, freebsdAnchors(), root, install)
	}
	for _, a := range linuxAnchors() {
		if !isDir(a.dir) {
			continue
		}
		if _, err := exec.LookPath(a.tool); err != nil {
			continue
		}
		return updateAnchors(ctx, a, root, install)
	}
	return Result{Store: "system", Where: "none", Err: fmt.Errorf("%w: none of update-ca-certificates, update-ca-trust or trust "+
		"with its anchor directory is installed (on Debian: apt-get install ca-certificates); "+
		"or install `certkeeper ca root` by hand", ErrNoStore)}
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// macKeychain trusts root in the System keychain with the security tool.
func macKeychain(ctx context.Context, root *x509.Certificate, install bool) Result {
	const keychain = "/Library/Keychains/System.keychain"
	r := Result{Store: "system", Where: keychain}
	path, remove, err := tempPEM(root)
	if err != nil {
		r.Err = err
		return r
	}
	defer remove()
	if install {
		r.Err = run(ctx, "security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", keychain, path)
		return r
	}
	// Remove the trust setting, then the certificate itself; either may
	// already be gone.
	_ = run(ctx, "security", "remove-trusted-cert", "-d", path)
	sum := sha1.Sum(root.Raw)
	if err := run(ctx, "security", "delete-certificate", "-Z", strings.ToUpper(hex.EncodeToString(sum[:])), keychain); err != nil &&
		!strings.Contains(err.Error(), "could not be found") {
		r.Err = err
	}
	return r
}

// windowsRoot adds root to the machine's Trusted Root Certification
// Authorities with certutil.exe (an administrator's shell is needed).
func windowsRoot(ctx context.Context, root *x509.Certificate, install bool) Result {
	r := Result{Store: "system", Where: `LocalMachine\Root`}
	if !install {
		r.Err = run(ctx, "certutil", "-delstore", "Root", hex.EncodeToString(root.SerialNumber.Bytes()))
		return r
	}
	path, remove, err := tempPEM(root)
	if err != nil {
		r.Err = err
		return r
	}
	defer remove()
	r.Err = run(ctx, "certutil", "-addstore", "-f", "Root", path)
	return r
}
