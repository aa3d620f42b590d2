package truststore

import (
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// nssStores installs (or removes) root in every NSS database under home:
// the shared one Chromium uses on Linux and each Firefox profile. It does
// nothing, and reports nothing, when NSS's certutil is not installed.
func nssStores(ctx context.Context, root *x509.Certificate, home string, install bool) []Result {
	if runtime.GOOS == "windows" {
		return nil // Windows' certutil is another tool; browsers there use the system store.
	}
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		return nil
	}
	if home == "" {
		if home, err = os.UserHomeDir(); err != nil {
			return nil
		}
	}
	var results []Result
	for _, db := range nssDatabases(home) {
		r := Result{Store: "nss", Where: db}
		if install {
			r.Err = nssInstall(ctx, certutil, db, root)
		} else {
			r.Err = nssRemove(ctx, certutil, db, root)
		}
		results = append(results, r)
	}
	return results
}

// nssDatabases lists the NSS databases under home, each as certutil names
// them ("sql:DIR" for cert9.db, "dbm:DIR" for the old cert8.db).
func nssDatabases(home string) []string {
	dirs := []string{
		filepath.Join(home, ".pki", "nssdb"),
		filepath.Join(home, "snap", "chromium", "current", ".pki", "nssdb"),
	}
	for _, pattern := range []string{
		filepath.Join(home, ".mozilla", "firefox", "*"),
		filepath.Join(home, "snap", "firefox", "common", ".mozilla", "firefox", "*"),
		filepath.Join(home, "Library", "Application Support", "Firefox", "Profiles", "*"),
	} {
		m, _ := filepath.Glob(pattern)
		dirs = append(dirs, m...)
	}
	var dbs []string
	for _, d := range dirs {
		switch {
		case regular(filepath.Join(d, "cert9.db")):
			dbs = append(dbs, "sql:"+d)
		case regular(filepath.Join(d, "cert8.db")):
			dbs = append(dbs, "dbm:"+d)
		}
	}
	return dbs
}

func regular(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// nssInstall adds root to db as a trusted CA for TLS servers ("C,,").
func nssInstall(ctx context.Context, certutil, db string, root *x509.Certificate) error {
	path, remove, err := tempPEM(root)
	if err != nil {
		return err
	}
	defer remove()
	return run(ctx, certutil, "-A", "-d", db, "-t", "C,,", "-n", Name(root), "-i", path)
}

// nssRemove deletes root from db; a root that is not there is not an error.
func nssRemove(ctx context.Context, certutil, db string, root *x509.Certificate) error {
	err := run(ctx, certutil, "-D", "-d", db, "-n", Name(root))
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "could not find") {
		return nil
	}
	return err
}
