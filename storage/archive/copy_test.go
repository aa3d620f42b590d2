package archive_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/archive"
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
	if stats.ImportStats != (archive.ImportStats{Keys: len(want), Imported: len(want)}) {
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
