package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// Archive format. An archive is a gzip-compressed tar (one gzip stream)
// whose first member is the manifest, certkeeper-archive.json:
//
//	{"format": "certkeeper-archive", "version": 1, "created": "2026-11-24T10:00:00Z", "keys": 7}
//
// followed by one regular file per storage key, in sorted order, whose path
// is the key ("certificates/local/a.test.json") and whose content is the
// value, byte for byte. Every member has mode 0600, owner 0, and the
// creation time as its modification time. There are no directory entries,
// links or other member types.
//
// The key layout is package storage's (storage/keys.go), not this
// package's: an archive carries the keys a Storage holds, as long as
// storage.IsKnownKey knows them. Export, Import and Copy refuse others
// (*ForeignKeysError): they are not certkeeper's state, and one holding a
// private key would be stored in clear even in encrypted storage. Old and
// new versions move state between them as long as the format version is
// understood and the older one knows the newer one's keys.
const (
	// Version is the version of the archive format that Export
	// writes and the only one Import reads. It changes only if an older
	// Import could misread a newer archive; fields added to the manifest
	// do not change it.
	Version = 1

	archiveManifestName = "certkeeper-archive.json"
	archiveFormat       = "certkeeper-archive"

	// defaultMaxArchiveMember bounds one value: certkeeper's values are a
	// few KiB (an RSA-4096 certificate record is under 16 KiB).
	defaultMaxArchiveMember = 16 << 20
	// defaultMaxArchiveSize bounds the uncompressed archive: about
	// 150,000 certificates (190,000 ECDSA ones), each counted with
	// tarMemberOverhead. Import no longer holds the values, but holds the
	// key names and does the work; older versions refuse larger archives.
	defaultMaxArchiveSize = 1 << 30
	// maxManifestSize bounds the manifest, which is a few hundred bytes.
	maxManifestSize = 64 << 10
	// tarMemberOverhead is an upper bound on the tar framing of one member
	// as Export writes it: a header block, a PAX header and its records
	// for a name longer than 100 bytes or not ASCII (a key is at most 1024
	// bytes), and the padding of the content to a 512-byte block.
	tarMemberOverhead = 512 + 512 + 1536 + 511
	// tarEndOverhead is the end-of-archive marker (two zero blocks),
	// padded to a 10 KiB record by some tar writers.
	tarEndOverhead = 10 << 10
)

// ErrInvalid is returned (wrapped, with the reason and the member
// concerned) by Import for input that is not an archive Export wrote: not
// gzip, truncated or corrupt, an unknown format version, a member that is
// not a regular file, a path that is not a valid storage key, an oversized
// member, or a value that does not parse (a certificate record, an account
// key, a JSON document).
var ErrInvalid = errors.New("invalid certkeeper archive")

func invalidArchive(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// manifest is the first member of an archive.
type manifest struct {
	// Format is always archiveFormat; it tells a certkeeper archive from
	// any other tar.gz.
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	// Keys is the number of key members that follow, so that an archive
	// cut at a member boundary is not taken for a smaller whole one.
	Keys int `json:"keys"`
}

// ExportStats describes an archive written by Export.
type ExportStats struct {
	// Keys is the number of storage keys in the archive.
	Keys int
	// Bytes is the size of the archive written to w (compressed).
	Bytes int64
	// Invalid are the values left out of the archive because certkeeper
	// refuses them (a certificate record naming no name, a value that
	// should be sealed and is not, ...) and Import would too: why, by
	// storage key.
	Invalid map[string]error
}

// Export writes every key of st and its value to w as one portable
// archive (a gzip-compressed tar; see Version), for Import to read
// into the same or another Storage: to move certkeeper to a new server, or
// to back it up. The archive holds private keys (ACME accounts',
// certificates', the local CA's): it needs the care the storage itself
// does. Lock leases are not keys (Storage.Lock) and are not exported.
// A storage holding keys certkeeper never writes (storage.IsKnownKey) is
// refused with a *ForeignKeysError, before anything is written to w.
//
// Export holds the list of keys and a few values at a time, never the
// whole state: its memory does not grow with the size of the values. As
// the manifest, which comes first, counts the keys that follow, it reads
// st twice: a first pass loads and checks every value, keeping only its
// SHA-256 digest, and counts the keys to archive; the second loads each
// value again and writes it. A value that changed between the passes is
// checked again and archived as it is then. A key deleted between the
// passes, or made invalid, would leave the manifest's count wrong: Export
// then stops with an error wrapping ErrChanged and leaves the archive
// unfinished (no gzip trailer), which Import refuses; ExportFile tries
// again. The values are read one after another, not as one snapshot:
// stop processes that write to st for an exact copy.
//
// Export refuses to write an archive that Import, with its default limits,
// would refuse: a value over 16 MiB, or more than 1 GiB in all; it finds
// out in the first pass, before anything is written to w. A value
// Import would refuse as invalid (a damaged certificate record, one that
// names no name, a clear value where a sealed one belongs) is left out
// and listed in ExportStats.Invalid, so one bad record does not stop a
// backup.
func Export(ctx context.Context, st storage.Storage, w io.Writer) (ExportStats, error) {
	keys, err := st.List(ctx, "")
	if err != nil {
		return ExportStats{}, fmt.Errorf("exporting storage: %w", err)
	}
	if err := foreignKeys(keys); err != nil {
		return ExportStats{}, fmt.Errorf("exporting storage: %w", err)
	}
	for _, key := range keys {
		if err := storage.ValidateKey(key); err != nil {
			return ExportStats{}, fmt.Errorf("exporting: %w", err)
		}
	}

	// First pass: which keys go in the archive, and their digests.
	invalid := map[string]error{}
	var kept []string
	var sums [][sha256.Size]byte
	var size int64 = tarEndOverhead + 512 + maxManifestSize
	err = loadInOrder(ctx, st, keys, checkValue, func(key string, l *loaded) error {
		if errors.Is(l.err, fs.ErrNotExist) {
			return nil // deleted since List
		}
		if errors.Is(l.err, storage.ErrInvalidRecord) {
			invalid[key] = l.err
			return nil
		}
		if l.err != nil {
			return l.err
		}
		if l.invalid != nil {
			invalid[key] = l.invalid
			return nil
		}
		var err error
		if size, err = addExportSize(size, key, l.value); err != nil {
			return err
		}
		kept = append(kept, key)
		sums = append(sums, l.sum)
		return nil
	})
	if err != nil {
		return ExportStats{}, fmt.Errorf("exporting: %w", err)
	}

	created := time.Now().UTC().Truncate(time.Second)
	man, err := json.MarshalIndent(manifest{Format: archiveFormat, Version: Version, Created: created, Keys: len(kept)}, "", "\t")
	if err != nil {
		return ExportStats{}, fmt.Errorf("exporting: %w", err)
	}
	cw := &countingWriter{w: w}
	zw := gzip.NewWriter(cw)
	tw := tar.NewWriter(zw)
	if err := writeMember(tw, archiveManifestName, append(man, '\n'), created); err != nil {
		return ExportStats{Bytes: cw.n}, fmt.Errorf("exporting: %w", err)
	}

	// Second pass: the values again, written as they come. On error the
	// gzip stream is left unfinished, so that what was written is no
	// archive Import would take.
	size = tarEndOverhead + 512 + maxManifestSize
	i := 0
	err = loadInOrder(ctx, st, kept, nil, func(key string, l *loaded) error {
		sum := sums[i]
		i++
		switch {
		case errors.Is(l.err, fs.ErrNotExist):
			return fmt.Errorf("%w: %s was deleted (stop what writes to the storage, or export again)", ErrChanged, key)
		case errors.Is(l.err, storage.ErrInvalidRecord):
			return fmt.Errorf("%w: %s was damaged: %w", ErrChanged, key, l.err)
		case l.err != nil:
			return l.err
		}
		if l.sum != sum {
			if err := checkValue(key, l.value); err != nil {
				return fmt.Errorf("%w: %s was damaged: %w", ErrChanged, key, err)
			}
		}
		var err error
		if size, err = addExportSize(size, key, l.value); err != nil {
			return err
		}
		if err := writeMember(tw, key, l.value, created); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return ExportStats{Bytes: cw.n}, fmt.Errorf("exporting: %w", err)
	}
	if err := tw.Close(); err != nil {
		return ExportStats{Bytes: cw.n}, fmt.Errorf("exporting: %w", err)
	}
	if err := zw.Close(); err != nil {
		return ExportStats{Bytes: cw.n}, fmt.Errorf("exporting: %w", err)
	}
	return ExportStats{Keys: len(kept), Bytes: cw.n, Invalid: invalid}, nil
}

// ErrChanged is returned (wrapped, naming the key) by Export when a key
// it counted in the archive's manifest was deleted or damaged before it
// was written: the archive it began is unfinished, and Import refuses it.
// Exporting again gives a whole archive.
var ErrChanged = errors.New("storage changed during the export")

// addExportSize adds key's value to size, the uncompressed size of an
// archive, and refuses what Import's default limits would refuse.
func addExportSize(size int64, key string, value []byte) (int64, error) {
	if len(value) > defaultMaxArchiveMember {
		return size, fmt.Errorf("%s: its value of %d bytes exceeds the %d an archive member may hold",
			key, len(value), defaultMaxArchiveMember)
	}
	size += int64(len(value)) + tarMemberOverhead
	if size > defaultMaxArchiveSize {
		return size, fmt.Errorf("storage holds more than the %d MiB an archive may hold", defaultMaxArchiveSize>>20)
	}
	return size, nil
}

func writeMember(tw *tar.Writer, name string, data []byte, mtime time.Time) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     int64(len(data)),
		Mode:     0o600,
		ModTime:  mtime,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ImportOptions configures Import. The zero value refuses conflicts and
// applies the default limits.
type ImportOptions struct {
	// Overwrite replaces keys whose stored value differs from the
	// archive's. When false, Import stores nothing if any key differs, and
	// returns a *ConflictError naming them.
	Overwrite bool

	// MaxMemberSize bounds the value of one key. Zero means 16 MiB.
	MaxMemberSize int64

	// MaxSize bounds the archive's uncompressed size, counting each value
	// plus 3 KiB for its tar headers. Import holds a few values at a
	// time, not the archive, but reads it up to three times and holds
	// the names of its keys: the bound keeps a hostile archive (a gzip
	// bomb, millions of empty members) from costing more than that much
	// work and a fraction of it in memory. Zero means 1 GiB (about
	// 150,000 certificates), which Export also keeps to.
	MaxSize int64

	// TempDir is where Import keeps a copy of an archive it reads from
	// input that cannot be read again (a pipe; a file is read again in
	// place), while it checks the archive: a file of mode 0600, removed
	// before Import returns, as large as the compressed archive. Empty
	// means os.TempDir().
	TempDir string
}

func (o *ImportOptions) maxMemberSize() int64 {
	if o.MaxMemberSize > 0 {
		return o.MaxMemberSize
	}
	return defaultMaxArchiveMember
}

func (o *ImportOptions) maxSize() int64 {
	if o.MaxSize > 0 {
		return o.MaxSize
	}
	return defaultMaxArchiveSize
}

// ImportStats describes what Import did.
type ImportStats struct {
	// Keys is the number of keys in the archive (0 if it was refused
	// before it was read to the end).
	Keys int
	// Imported is the number of keys stored: absent before, or replaced
	// under ImportOptions.Overwrite.
	Imported int
	// Overwritten is how many of Imported replaced a different value.
	Overwritten int
	// Skipped is the number of keys already stored with the archive's
	// value, left alone.
	Skipped int
	// Newer are the certificate records left alone, even under
	// ImportOptions.Overwrite, because storage holds a certificate issued
	// later than the archive's (a renewal since the export): restoring an
	// old backup must not roll live certificates back to older, or
	// expired, ones.
	Newer []string
}

// ConflictError is returned by Import, without ImportOptions.Overwrite,
// when keys of the archive are already stored with other values. Nothing
// was stored.
type ConflictError struct {
	// Keys are the conflicting keys, sorted.
	Keys []string
}

func (e *ConflictError) Error() string {
	const show = 10
	list := strings.Join(e.Keys[:min(len(e.Keys), show)], ", ")
	if len(e.Keys) > show {
		list += fmt.Sprintf(" and %d more", len(e.Keys)-show)
	}
	return fmt.Sprintf("%d keys are already stored with values that differ from the archive's (%s); nothing was imported",
		len(e.Keys), list)
}

// ForeignKeysError is returned by Export, Import and Copy when the
// storage or archive they read holds keys that certkeeper never writes
// (storage.IsKnownKey), such as the files of another ACME client's
// directory: it does not look like certkeeper's storage, and nothing was
// written.
type ForeignKeysError struct {
	// Keys are the foreign keys, sorted.
	Keys []string
}

// foreignShown is how many foreign keys a ForeignKeysError's message names.
const foreignShown = 5

func (e *ForeignKeysError) Error() string {
	list := strings.Join(e.Keys[:min(len(e.Keys), foreignShown)], ", ")
	if len(e.Keys) > foreignShown {
		list += fmt.Sprintf(" and %d more", len(e.Keys)-foreignShown)
	}
	return fmt.Sprintf("%d keys certkeeper never writes (%s): this does not look like certkeeper storage; "+
		"nothing was written (another ACME client's state is taken over by an import, not copied)", len(e.Keys), list)
}

// foreignKeys returns a *ForeignKeysError naming the keys that
// storage.IsKnownKey does not know, or nil if it knows them all.
func foreignKeys(keys []string) error {
	var foreign []string
	for _, k := range keys {
		if !storage.IsKnownKey(k) {
			foreign = append(foreign, k)
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	slices.Sort(foreign)
	return &ForeignKeysError{Keys: foreign}
}

// newerStored reports whether key is a certificate record and stored, the
// value storage holds, is a renewal of archived's: issued later, by the
// same CA (the key names it). For the local CA, whose root and
// intermediate the archive carries too, only by the same intermediate: a
// certificate another local CA issued would not verify once the archive's
// CA replaces it.
func newerStored(key string, stored, archived []byte) bool {
	if !strings.HasPrefix(key, storage.CertificatePrefix("")) {
		return false
	}
	curRec, cur, err := storage.UnmarshalCertificateLeaf(key, stored)
	if err != nil {
		return false
	}
	oldRec, old, err := storage.UnmarshalCertificateLeaf(key, archived)
	if err != nil || !curRec.NotBefore.After(oldRec.NotBefore) {
		return false
	}
	return !strings.HasPrefix(key, storage.CertificatePrefix("local")) || bytes.Equal(cur.AuthorityKeyId, old.AuthorityKeyId)
}

// privateKeysFirst orders storage keys with private keys (".key") first,
// then by name.
func privateKeysFirst(a, b string) int {
	ak, bk := strings.HasSuffix(a, ".key"), strings.HasSuffix(b, ".key")
	switch {
	case ak && !bk:
		return -1
	case bk && !ak:
		return 1
	}
	return strings.Compare(a, b)
}

// readManifest reads and checks an archive's first member, its manifest;
// readErr turns a read error into the error to return.
func readManifest(tr *tar.Reader, readErr func(error) error) (manifest, error) {
	var man manifest
	hdr, err := tr.Next()
	if err != nil {
		return man, readErr(err)
	}
	if hdr.Name != archiveManifestName || hdr.Typeflag != tar.TypeReg {
		return man, invalidArchive("its first member is %q, not %s", hdr.Name, archiveManifestName)
	}
	if hdr.Size > maxManifestSize {
		return man, invalidArchive("%s is %d bytes, more than %d", archiveManifestName, hdr.Size, maxManifestSize)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return man, readErr(err)
	}
	if err := json.Unmarshal(data, &man); err != nil {
		return man, invalidArchive("%s: %w", archiveManifestName, err)
	}
	if man.Format != archiveFormat {
		return man, invalidArchive("%s has format %q, want %q", archiveManifestName, man.Format, archiveFormat)
	}
	if man.Version != Version {
		return man, invalidArchive("format version %d is not supported (this certkeeper reads version %d; a newer one may read it)",
			man.Version, Version)
	}
	if man.Keys < 0 {
		return man, invalidArchive("%s counts %d keys", archiveManifestName, man.Keys)
	}
	return man, nil
}

// checkHeader refuses members that Export does not write or that could
// name something outside the storage.
func checkHeader(hdr *tar.Header, maxMember int64) error {
	name := hdr.Name
	switch hdr.Typeflag {
	case tar.TypeReg:
	case tar.TypeSymlink, tar.TypeLink:
		return invalidArchive("member %q is a link (to %q); an archive holds only regular files", name, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return invalidArchive("member %q is a device or pipe; an archive holds only regular files", name)
	case tar.TypeDir:
		return invalidArchive("member %q is a directory; an archive holds only regular files", name)
	default:
		return invalidArchive("member %q has type %q; an archive holds only regular files", name, hdr.Typeflag)
	}
	if strings.HasPrefix(name, "/") {
		return invalidArchive("member %q is an absolute path", name)
	}
	if slices.Contains(strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }), "..") {
		return invalidArchive("member %q leaves the storage with \"..\"", name)
	}
	if name == archiveManifestName {
		return invalidArchive("member %s appears twice", name)
	}
	if err := storage.ValidateKey(name); err != nil {
		return invalidArchive("member %q: %w", name, err)
	}
	if hdr.Size > maxMember {
		return invalidArchive("member %s is %d bytes, more than the %d a key may hold", name, hdr.Size, maxMember)
	}
	return nil
}

// checkValue refuses a value that certkeeper could not use: a damaged
// certificate record, account key or JSON document. Errors wrap
// storage.ErrInvalidRecord, name key, and never quote the value.
func checkValue(key string, value []byte) error {
	switch {
	case strings.HasPrefix(key, storage.CertificatePrefix("")):
		if _, err := storage.UnmarshalCertificate(key, value); err != nil {
			return fmt.Errorf("%s is not a valid certificate record: %w", key, err)
		}
	case strings.HasPrefix(key, "accounts/") && strings.HasSuffix(key, ".key"):
		if _, err := storage.ParsePrivateKeyPEM(value); err != nil {
			return fmt.Errorf("%s is not a valid private key (%w): %w", key, storage.ErrInvalidRecord, err)
		}
	case strings.HasSuffix(key, ".json"):
		if !json.Valid(value) {
			return fmt.Errorf("%s is not valid JSON (%w)", key, storage.ErrInvalidRecord)
		}
	}
	return nil
}

// sourceReader reads the archive's input. It stops once ctx is done, so
// that an Import reading from a pipe can be cancelled between reads, and
// keeps the input's own error (a cancellation, an I/O error), so that it is
// not reported as a corrupt archive.
type sourceReader struct {
	ctx context.Context
	r   io.Reader
	err error // the first error other than io.EOF
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// errArchiveTooLarge is returned by capReader past its limit.
var errArchiveTooLarge = errors.New("archive too large")

// capReader reads at most n bytes from r, and then returns
// errArchiveTooLarge if r holds more.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.n <= 0 {
		var one [1]byte
		if n, err := io.ReadFull(c.r, one[:]); n > 0 || err != io.EOF {
			if n > 0 {
				err = errArchiveTooLarge
			}
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}
