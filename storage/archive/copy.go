package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"

	"github.com/certkeeper/certkeeper/internal/atomicfile"
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

// Copy copies every key of src to dst, key by key, with Export's checks
// and Import's conflict handling (opts.Overwrite; a certificate dst holds
// a renewal of is kept, CopyStats.Newer, as Import keeps it) and order (private keys
// before the records that name them), and then verifies that every key of
// src reads back from dst with the same value. Values certkeeper refuses
// are left out and listed in CopyStats.Invalid. A src holding keys that
// certkeeper never writes (storage.IsKnownKey), such as another ACME
// client's directory, is refused with a *ForeignKeysError before anything
// is written: those keys would be copied as opaque values, and a private
// key among them stored in clear even in an encrypted dst.
//
// It holds one value at a time and the names of the keys, never the
// whole state: a storage of any size copies in a few megabytes, and,
// unlike an archive, without a bound on its size (1 GiB). So it reads
// each value twice: once to compare it with dst's, before anything is
// written, so that a conflict refuses the whole copy as Import does; and
// again to store it. A key that changed in src meanwhile is copied as it
// is then, and one that changes after it is copied fails the
// verification: run Copy again (keys already copied are skipped). A key
// deleted meanwhile is not an error. Of opts, Copy uses Overwrite and
// MaxMemberSize.
func Copy(ctx context.Context, src, dst storage.Storage, opts ImportOptions) (CopyStats, error) {
	stats := CopyStats{Invalid: map[string]error{}}
	keys, err := src.List(ctx, "")
	if err != nil {
		return stats, fmt.Errorf("copying: listing: %w", err)
	}
	if err := foreignKeys(keys); err != nil {
		return stats, fmt.Errorf("copying: %w", err)
	}
	var writes, conflicts []string
	for _, key := range keys {
		value, err := loadValid(ctx, src, key, opts.maxMemberSize(), stats.Invalid)
		if err != nil || value == nil {
			if err != nil {
				return stats, err
			}
			continue
		}
		stats.Keys++
		write, err := compare(ctx, dst, key, value, &stats.ImportStats, &conflicts)
		if err != nil {
			return stats, fmt.Errorf("copying: %w", err)
		}
		if write {
			writes = append(writes, key)
		}
	}
	if len(conflicts) > 0 && !opts.Overwrite {
		slices.Sort(conflicts)
		return stats, &ConflictError{Keys: conflicts}
	}
	slices.SortFunc(writes, privateKeysFirst)
	for _, key := range writes {
		value, err := loadValid(ctx, src, key, opts.maxMemberSize(), stats.Invalid)
		if err != nil {
			return stats, err
		}
		if value == nil {
			continue // deleted, or made invalid, since the first pass
		}
		if err := dst.Store(ctx, key, value); err != nil {
			return stats, fmt.Errorf("copying (%d of %d keys stored): %w", stats.Imported, len(writes), err)
		}
		stats.Imported++
	}
	stats.Overwritten = len(conflicts)
	left := maps.Clone(stats.Invalid)
	for _, key := range stats.Newer {
		left[key] = errNewerKept
	}
	return stats, verify(ctx, src, dst, left)
}

// errNewerKept marks, for verify, a key dst holds a renewal of.
var errNewerKept = errors.New("dst holds a newer certificate")

// loadValid loads key from src with Export's checks: nil for a key
// deleted since it was listed, or one whose value certkeeper refuses
// (recorded in invalid); an error for a key that cannot be read, or a
// value over maxMember bytes.
func loadValid(ctx context.Context, src storage.Storage, key string, maxMember int64, invalid map[string]error) ([]byte, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("copying: %w", err)
	}
	value, err := src.Load(ctx, key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, storage.ErrInvalidRecord):
		invalid[key] = err
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("copying: %w", err)
	}
	if err := checkValue(key, value); err != nil {
		invalid[key] = err
		return nil, nil
	}
	if int64(len(value)) > maxMember {
		return nil, fmt.Errorf("copying %s: its value of %d bytes exceeds the %d a key may hold", key, len(value), maxMember)
	}
	return value, nil
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
//
// Should a key be deleted or damaged while the archive is written
// (ErrChanged: a challenge answered, an order finished by a running
// certkeeper), ExportFile starts again, up to exportAttempts times in
// all, with a new temporary file.
func ExportFile(ctx context.Context, st storage.Storage, name string) (stats ExportStats, err error) {
	for range exportAttempts - 1 {
		stats, err = exportFile(ctx, st, name)
		if !errors.Is(err, ErrChanged) {
			return stats, err
		}
	}
	return exportFile(ctx, st, name)
}

// exportAttempts is how many times ExportFile tries to write an archive
// of a storage that changes under it.
const exportAttempts = 3

// exportFile is one attempt of ExportFile.
func exportFile(ctx context.Context, st storage.Storage, name string) (stats ExportStats, err error) {
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

// compare says whether value is to be stored under key in st, as Import
// and Copy decide: when st lacks the key, or holds another value (a
// conflict, added to conflicts); not when it holds the same value
// (stats.Skipped) or a renewal of the certificate (stats.Newer).
func compare(ctx context.Context, st storage.Storage, key string, value []byte, stats *ImportStats, conflicts *[]string) (bool, error) {
	old, err := st.Load(ctx, key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case err != nil:
		return false, err
	case bytes.Equal(old, value):
		stats.Skipped++
	case newerStored(key, old, value):
		stats.Newer = append(stats.Newer, key)
	default:
		*conflicts = append(*conflicts, key)
		return true, nil
	}
	return false, nil
}
