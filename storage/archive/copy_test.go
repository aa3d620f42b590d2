package archive_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/archive"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestCopy: Copy copies every valid key, leaves out and reports an invalid
// one, skips what is already there, and refuses a conflict unless told to
// overwrite.
func TestCopy(t *testing.T) {
	ctx := t.Context()
	src, dst := filestore.New(t.TempDir()), filestore.New(t.TempDir())
	want := fillState(t, src)
	bad, _ := storage.CertificateKey("local", "bad.test")
	if err := src.Store(ctx, bad, []byte("{")); err != nil {
		t.Fatal(err)
	}

	stats, err := archive.Copy(ctx, src, dst, archive.ImportOptions{})
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if !reflect.DeepEqual(stats.ImportStats, archive.ImportStats{Keys: len(want), Imported: len(want)}) {
		t.Errorf("Copy stats = %+v, want %d keys imported", stats.ImportStats, len(want))
	}
	if _, ok := stats.Invalid[bad]; !ok || len(stats.Invalid) != 1 {
		t.Errorf("Copy Invalid = %v, want only %s", stats.Invalid, bad)
	}
	sameState(t, dump(t, dst), want)

	if stats, err = archive.Copy(ctx, src, dst, archive.ImportOptions{}); err != nil || stats.Skipped != len(want) {
		t.Errorf("Copy again = %+v, %v; want every key skipped", stats.ImportStats, err)
	}

	limits := storage.StateKey("limits")
	if err := dst.Store(ctx, limits, []byte(`{"changed":true}`)); err != nil {
		t.Fatal(err)
	}
	_, err = archive.Copy(ctx, src, dst, archive.ImportOptions{})
	if cerr, ok := errors.AsType[*archive.ConflictError](err); !ok || len(cerr.Keys) != 1 || cerr.Keys[0] != limits {
		t.Fatalf("Copy onto a changed key = %v, want a ConflictError naming %s", err, limits)
	}
	if stats, err = archive.Copy(ctx, src, dst, archive.ImportOptions{Overwrite: true}); err != nil || stats.Overwritten != 1 {
		t.Errorf("Copy with Overwrite = %+v, %v; want 1 overwritten", stats.ImportStats, err)
	}
	sameState(t, dump(t, dst), want)
}

// TestExportFile: the archive file is mode 0600, complete, and no
// temporary file is left beside it.
func TestExportFile(t *testing.T) {
	src := filestore.New(t.TempDir())
	want := fillState(t, src)
	dir := t.TempDir()
	name := filepath.Join(dir, "state.tar.gz")
	stats, err := archive.ExportFile(t.Context(), src, name)
	if err != nil || stats.Keys != len(want) {
		t.Fatalf("ExportFile = %+v, %v; want %d keys", stats, err, len(want))
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode = %v, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the archive", len(entries))
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dst := filestore.New(t.TempDir())
	if _, err := archive.Import(t.Context(), dst, f, archive.ImportOptions{}); err != nil {
		t.Fatalf("Import(ExportFile's archive): %v", err)
	}
	sameState(t, dump(t, dst), want)
}

// TestCopyMemory: Copy holds one value at a time, not the state: copying
// 48 values of 1 MiB raises the heap by far less than their 48 MiB (an
// archive in memory held each value twice, and refused a state over
// 1 GiB).
func TestCopyMemory(t *testing.T) {
	ctx := t.Context()
	src, dst := filestore.New(t.TempDir()), filestore.New(t.TempDir())
	const n, size = 48, 1 << 20
	for i := range n {
		v := append(append([]byte{'"'}, bytes.Repeat([]byte{byte('a' + i%26)}, size-2)...), '"')
		if err := src.Store(ctx, storage.StateKey(fmt.Sprintf("big-%d", i)), v); err != nil {
			t.Fatal(err)
		}
	}
	var stats archive.CopyStats
	var err error
	grew := peakHeapGrowth(func() { stats, err = archive.Copy(ctx, src, dst, archive.ImportOptions{}) })
	if err != nil || stats.Imported != n {
		t.Fatalf("Copy = %+v, %v; want %d imported", stats.ImportStats, err, n)
	}
	t.Logf("heap in use grew by %.1f MiB at most while copying %d MiB", float64(grew)/(1<<20), n*size>>20)
	if grew > 16<<20 {
		t.Errorf("heap in use grew by %.1f MiB while copying %d values of 1 MiB: Copy holds the state in memory", float64(grew)/(1<<20), n)
	}
}

// fillCertbot lays out dir as certbot's configuration directory, with a
// private key under certbot's path for it, and returns the storage keys
// the files make.
func fillCertbot(t *testing.T, dir string) []string {
	t.Helper()
	files := map[string][]byte{
		"archive/a.test/privkey1.pem": accountKeyPEM(t),
		"archive/a.test/cert1.pem":    []byte("-----BEGIN CERTIFICATE-----\n"),
		"renewal/a.test.conf":         []byte("version = 2.11.0\n"),
		"live/README":                 []byte("This directory contains your keys and certificates.\n"),
		"keys/0000_key-certbot.pem":   accountKeyPEM(t),
		"csr/0000_csr-certbot.pem":    []byte("-----BEGIN CERTIFICATE REQUEST-----\n"),
		"accounts/acme-v02.api.letsencrypt.org/directory/0123abcd/private_key.json": []byte(`{"kty":"EC"}`),
	}
	var keys []string
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, name)
	}
	slices.Sort(keys)
	return keys
}

// TestCopyRefusesForeignKeys: a source laid out like another ACME
// client's directory, alone or mixed with certkeeper's own keys, is
// refused with a *ForeignKeysError naming its keys, and nothing is
// written: neither in a plain destination nor, in clear, in an encrypted
// one.
func TestCopyRefusesForeignKeys(t *testing.T) {
	for _, mixed := range []bool{false, true} {
		t.Run(fmt.Sprintf("mixed=%v", mixed), func(t *testing.T) {
			srcDir := t.TempDir()
			src := filestore.New(srcDir)
			foreign := fillCertbot(t, srcDir)
			if mixed {
				fillState(t, src)
			}
			plainDir, sealedDir := t.TempDir(), t.TempDir()
			keys, err := encrypted.ParseKeys(encrypted.GenerateKey())
			if err != nil {
				t.Fatal(err)
			}
			dsts := map[string]storage.Storage{
				plainDir:  filestore.New(plainDir),
				sealedDir: encrypted.New(filestore.New(sealedDir), keys),
			}
			for dir, dst := range dsts {
				_, err := archive.Copy(t.Context(), src, dst, archive.ImportOptions{Overwrite: true})
				ferr, ok := errors.AsType[*archive.ForeignKeysError](err)
				if !ok {
					t.Fatalf("Copy = %v, want a ForeignKeysError", err)
				}
				if !slices.Equal(ferr.Keys, foreign) {
					t.Errorf("ForeignKeysError.Keys = %q, want %q", ferr.Keys, foreign)
				}
				msg := err.Error()
				for _, want := range []string{"7 keys certkeeper never writes", foreign[0], "and 2 more", "does not look like certkeeper storage", "nothing was written"} {
					if !strings.Contains(msg, want) {
						t.Errorf("Copy = %q, want it to say %q", msg, want)
					}
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("Copy wrote %d entries into %s, want none", len(entries), dir)
				}
			}
		})
	}
}

// TestExportRefusesForeignKeys: Export of a storage holding keys
// certkeeper never writes fails with a *ForeignKeysError and writes
// nothing, so no certkeeper archive holds foreign keys.
func TestExportRefusesForeignKeys(t *testing.T) {
	dir := t.TempDir()
	src := filestore.New(dir)
	fillState(t, src)
	foreign := fillCertbot(t, dir)
	var buf bytes.Buffer
	_, err := archive.Export(t.Context(), src, &buf)
	if ferr, ok := errors.AsType[*archive.ForeignKeysError](err); !ok || !slices.Equal(ferr.Keys, foreign) {
		t.Fatalf("Export = %v, want a ForeignKeysError naming %q", err, foreign)
	}
	if buf.Len() != 0 {
		t.Errorf("Export wrote %d bytes, want none", buf.Len())
	}
}
