package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/certkeeper/certkeeper/internal/atomicfile"
	"io"
	"io/fs"

	"github.com/certkeeper/certkeeper/storage"
)

// CopyStats describes what Copy did.
type CopyStats struct {
	ImportStats
	// Invalid are the values of src left out of the copy because
	// certkeeper refuses them (see ExportStats.Invalid): why, by storage
	// key. It is set even when Copy fails after the export.
	Invalid map[string]error
}

// Copy copies every key of src to dst through an archive held in memory,
// so that it gets Export's and Import's checks and Import's conflict
// handling (opts), and then verifies that every key of src reads back from
// dst with the same value. Values certkeeper refuses are left out and
// listed in CopyStats.Invalid. A key that changed in src between the
// export and the verification fails the verification: run Copy again (keys
// already copied are skipped). A key deleted meanwhile is not an error.
func Copy(ctx context.Context, src, dst storage.Storage, opts ImportOptions) (CopyStats, error) {
	var buf bytes.Buffer
	exported, err := Export(ctx, src, &buf)
	if err != nil {
		return CopyStats{}, err
	}
	stats := CopyStats{Invalid: exported.Invalid}
	if stats.ImportStats, err = Import(ctx, dst, &buf, opts); err != nil {
		return stats, err
	}
	return stats, verify(ctx, src, dst, exported.Invalid)
}

// verify checks that every key of src but those left out reads from dst
// with the same value.
func verify(ctx context.Context, src, dst storage.Storage, left map[string]error) error {
	keys, err := src.List(ctx, "")
	if err != nil {
		return fmt.Errorf("verifying: %w", err)
	}
	for _, key := range keys {
		if _, ok := left[key]; ok {
			continue
		}
		want, err := src.Load(ctx, key)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, storage.ErrInvalidRecord) {
			continue // deleted, or made invalid, since the export
		}
		if err != nil {
			return fmt.Errorf("verifying: %w", err)
		}
		got, err := dst.Load(ctx, key)
		if err != nil {
			return fmt.Errorf("verifying %s: %w", key, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("verifying %s: the copy differs from the original (changed meanwhile? copy again)", key)
		}
	}
	return nil
}

// ExportFile is Export to the file name. The archive is written to a
// temporary file beside name, with mode 0600, and renamed to name once
// complete and synced: name is never a partial archive, and never readable
// by others, even for a moment. On error name is left as it was.
func ExportFile(ctx context.Context, st storage.Storage, name string) (stats ExportStats, err error) {
	var exportErr error
	err = atomicfile.Write(name, 0o600, func(w io.Writer) error {
		stats, exportErr = Export(ctx, st, w)
		return exportErr
	})
	switch {
	case exportErr != nil:
		return stats, exportErr
	case err != nil:
		return stats, fmt.Errorf("writing %s: %w", name, err)
	}
	return stats, nil
}
