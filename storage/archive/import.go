package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/certkeeper/certkeeper/storage"
)

// Import reads an archive written by Export from r and stores its keys in
// st.
//
// Import is all-or-nothing as far as a Storage allows: it reads and
// checks the whole archive before it stores the first key. It refuses,
// with an error wrapping ErrInvalid and nothing stored: input that is not
// gzip, truncated or corrupt (including a member count that disagrees
// with the manifest), an unknown format version, members that are not
// regular files (links, devices, directories), paths that are absolute,
// contain "..", or are otherwise not valid storage keys
// (storage.ValidateKey), duplicate paths, oversized members, and values
// that do not parse: certificate records (storage.UnmarshalCertificate),
// account keys, JSON documents. Keys that certkeeper never writes
// (storage.IsKnownKey), which Export does not archive, are refused with an
// error wrapping both ErrInvalid and a *ForeignKeysError. Errors name the
// member, never its content.
//
// It compares each key with st as it checks it: a key stored with the
// same value is skipped; one stored with another value is a conflict, and
// unless opts.Overwrite, Import returns a *ConflictError listing every
// conflict and stores nothing. Account private keys are stored first,
// then the other keys in the archive's order (sorted, as Export writes
// them). Should st fail part way, the keys stored before the failure
// stay, each one whole (Store is atomic); running Import again finishes
// the job.
//
// Import holds the names of the archive's keys and a SHA-256 digest of
// each value, and one value at a time, never the whole archive: its
// memory does not grow with the values. So it reads the archive again to
// store the values it checked (once for the private keys, once for the
// others): in place if r is an io.Seeker that can seek (a file), else
// from a copy it made of r while checking it (see ImportOptions.TempDir).
// A value that reads back other than it was checked (a file changed
// meanwhile) stops the import with an error wrapping ErrInvalid; the keys
// stored before it stay, as when st fails.
//
// Processes using st while Import runs may change a key between the
// comparison and the store: import into a storage no certkeeper is using.
func Import(ctx context.Context, st storage.Storage, r io.Reader, opts ImportOptions) (ImportStats, error) {
	in, err := newRereader(r, opts.TempDir)
	if err != nil {
		return ImportStats{}, fmt.Errorf("importing: %w", err)
	}
	defer in.close()
	src := &sourceReader{ctx: ctx, r: in.first()}
	var stats ImportStats
	var entries []entry
	var conflicts []string
	n, err := scanArchive(src, opts.maxMemberSize(), opts.maxSize(), func(key string, value []byte) error {
		e := entry{key: key, sum: sha256.Sum256(value)}
		var err error
		if e.store, err = compare(ctx, st, key, value, &stats, &conflicts); err != nil {
			return &storageError{err}
		}
		entries = append(entries, e)
		return nil
	})
	if src.err != nil {
		return ImportStats{}, fmt.Errorf("importing: reading the archive: %w", src.err)
	}
	if serr, ok := errors.AsType[*storageError](err); ok {
		return ImportStats{}, fmt.Errorf("importing: %w", serr.err)
	}
	if err != nil {
		return ImportStats{}, fmt.Errorf("importing: %w", err)
	}
	stats.Keys = n
	slices.Sort(stats.Newer)
	if len(conflicts) > 0 && !opts.Overwrite {
		slices.Sort(conflicts)
		return stats, &ConflictError{Keys: conflicts}
	}

	writes := 0
	for _, e := range entries {
		if e.store {
			writes++
		}
	}
	// Private keys first, as certkeeper writes an account's key before
	// its record: an interrupted import never leaves a record without
	// its key. The private keys are all stored before the first other
	// key is.
	for _, privateKeys := range []bool{true, false} {
		if writes == 0 {
			break
		}
		r, err := in.again()
		if err != nil {
			return stats, fmt.Errorf("importing: reading the archive again: %w", err)
		}
		src := &sourceReader{ctx: ctx, r: r}
		w := &writers{ctx: ctx, st: st, slots: make(chan struct{}, importWriters)}
		err = rescanArchive(src, opts.maxMemberSize(), entries, func(e entry) bool {
			return e.store && strings.HasSuffix(e.key, ".key") == privateKeys
		}, w.store)
		stored, serr := w.wait()
		stats.Imported += stored
		if serr != nil {
			return stats, fmt.Errorf("importing (%d of %d keys stored): %w", stats.Imported, writes, serr)
		}
		if src.err != nil {
			return stats, fmt.Errorf("importing (%d of %d keys stored): reading the archive again: %w", stats.Imported, writes, src.err)
		}
		if err != nil {
			return stats, fmt.Errorf("importing (%d of %d keys stored): %w", stats.Imported, writes, err)
		}
	}
	stats.Overwritten = len(conflicts)
	return stats, nil
}

// importWriters is how many Stores Import runs at once. A Store is
// durable on return, so filestore's costs two fsyncs, and Redis's or
// PostgreSQL's a round trip: run one after another, they made an import
// of 100,000 certificates take minutes. Several at once share the disk's
// flushes and overlap the round trips; each value stays durable.
const importWriters = 8

// writers runs up to cap(slots) Stores at once and counts those that
// succeed. Once one fails, it starts no more.
type writers struct {
	ctx   context.Context
	st    storage.Storage
	slots chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex // guards stored and err
	stored int
	err    error
}

// store stores value under key in a goroutine of its own, once fewer
// than cap(w.slots) are running, or returns the error of a Store that
// failed.
func (w *writers) store(key string, value []byte) error {
	w.slots <- struct{}{}
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if err != nil {
		<-w.slots
		return &storageError{err}
	}
	w.wg.Go(func() {
		defer func() { <-w.slots }()
		err := w.st.Store(w.ctx, key, value)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err == nil {
			w.stored++
		} else if w.err == nil {
			w.err = err
		}
	})
	return nil
}

// wait waits for the Stores begun, and returns how many succeeded and
// the first error.
func (w *writers) wait() (int, error) {
	w.wg.Wait()
	return w.stored, w.err
}

// entry is what Import keeps of a member between its readings of the
// archive: the key, the digest of the value it checked, and whether to
// store it.
type entry struct {
	key   string
	sum   [sha256.Size]byte
	store bool
}

// storageError carries an error of the Storage out of a scan, so that it
// is not taken for one of the archive.
type storageError struct{ err error }

func (e *storageError) Error() string { return e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

// scanArchive reads and checks a whole archive (see Import), calls visit
// with each member's key and value, one at a time, and returns the number
// of keys. The value is not used after visit returns. visit's error stops
// the scan and is returned as it is.
func scanArchive(r io.Reader, maxMember, maxSize int64, visit func(key string, value []byte) error) (int, error) {
	zr, err := gzip.NewReader(r)
	if err == io.EOF {
		return 0, invalidArchive("empty input")
	}
	if err != nil {
		return 0, invalidArchive("not gzip-compressed: %w", err)
	}
	// The cap on the decompressed stream bounds the work, and the names
	// held, whatever the headers claim (a gzip bomb, huge PAX headers).
	capped := &capReader{r: zr, n: maxSize + maxManifestSize + 2*tarMemberOverhead + tarEndOverhead}
	tr := tar.NewReader(capped)
	readErr := func(err error) error {
		if errors.Is(err, errArchiveTooLarge) {
			return invalidArchive("more than %d bytes uncompressed", maxSize)
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return invalidArchive("truncated or corrupt: %w", err)
	}

	man, err := readManifest(tr, readErr)
	if err != nil {
		return 0, err
	}
	var keys []string
	seen := make(map[string]bool)
	var size int64
	var value bytes.Buffer // reused: holds one value at a time
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, readErr(err)
		}
		if err := checkHeader(hdr, maxMember); err != nil {
			return 0, err
		}
		if seen[hdr.Name] {
			return 0, invalidArchive("member %s appears twice", hdr.Name)
		}
		seen[hdr.Name] = true
		if len(keys) == man.Keys {
			return 0, invalidArchive("it holds more keys than the %d its manifest counts", man.Keys)
		}
		size += hdr.Size + tarMemberOverhead
		if size > maxSize {
			return 0, invalidArchive("more than %d bytes uncompressed", maxSize)
		}
		value.Reset()
		if _, err := value.ReadFrom(tr); err != nil {
			return 0, readErr(err)
		}
		if err := checkValue(hdr.Name, value.Bytes()); err != nil {
			return 0, invalidArchive("member %w", err)
		}
		keys = append(keys, hdr.Name)
		if err := visit(hdr.Name, value.Bytes()); err != nil {
			return 0, err
		}
	}
	if len(keys) != man.Keys {
		return 0, invalidArchive("truncated: it holds %d keys, its manifest counts %d", len(keys), man.Keys)
	}
	if err := foreignKeys(keys); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	// Read to the end of the gzip stream: only there is its checksum
	// verified, and anything after the archive refused.
	if _, err := io.Copy(io.Discard, capped); err != nil {
		return 0, readErr(err)
	}
	return len(keys), nil
}

// rescanArchive reads again an archive scanArchive accepted, whose
// members it found to be entries, and calls store with the key and value
// of each member for which want is true, in the archive's order. A member
// that is not the one scanArchive found there, or whose value differs
// from the one it checked, is refused (ErrInvalid) before store sees it.
// It stops after the last entry, without reading the rest again.
func rescanArchive(r io.Reader, maxMember int64, entries []entry, want func(entry) bool, store func(key string, value []byte) error) error {
	changed := func(format string, args ...any) error {
		return invalidArchive("the archive changed while it was imported: "+format, args...)
	}
	last := -1
	for i, e := range entries {
		if want(e) {
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return changed("%w", err)
	}
	tr := tar.NewReader(zr)
	if hdr, err := tr.Next(); err != nil || hdr.Name != archiveManifestName {
		return changed("no manifest (%v)", err)
	}
	var value bytes.Buffer
	for _, e := range entries[:last+1] {
		hdr, err := tr.Next()
		if err != nil {
			return changed("%w", err)
		}
		if hdr.Name != e.key {
			return changed("member %q where %s was", hdr.Name, e.key)
		}
		if !want(e) {
			continue
		}
		if hdr.Size > maxMember {
			return changed("member %s is %d bytes", e.key, hdr.Size)
		}
		value.Reset()
		if _, err := value.ReadFrom(tr); err != nil {
			return changed("%w", err)
		}
		if sha256.Sum256(value.Bytes()) != e.sum {
			return changed("member %s differs from the one checked", e.key)
		}
		if err := store(e.key, bytes.Clone(value.Bytes())); err != nil {
			return err
		}
	}
	return nil
}

// rereader gives Import its input more than once: by seeking back to
// where it began, or from a copy made while it was first read.
type rereader struct {
	r      io.Reader
	seeker io.Seeker
	start  int64
	spool  *os.File // the copy, if r cannot seek
}

// newRereader returns a rereader of r, which copies it to a temporary
// file in dir (os.TempDir() if empty) if r cannot seek.
func newRereader(r io.Reader, dir string) (*rereader, error) {
	if s, ok := r.(io.Seeker); ok {
		if start, err := s.Seek(0, io.SeekCurrent); err == nil {
			return &rereader{r: r, seeker: s, start: start}, nil
		}
	}
	f, err := os.CreateTemp(dir, ".certkeeper-import-*")
	if err != nil {
		return nil, fmt.Errorf("keeping a copy of the archive: %w", err)
	}
	return &rereader{r: r, spool: f}, nil
}

// first returns the input for its first reading.
func (rr *rereader) first() io.Reader {
	if rr.spool != nil {
		return io.TeeReader(rr.r, rr.spool)
	}
	return rr.r
}

// again returns the input, from its start, for another reading.
func (rr *rereader) again() (io.Reader, error) {
	if rr.spool != nil {
		if _, err := rr.spool.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return rr.spool, nil
	}
	if _, err := rr.seeker.Seek(rr.start, io.SeekStart); err != nil {
		return nil, err
	}
	return rr.r, nil
}

// close removes the copy, if any.
func (rr *rereader) close() {
	if rr.spool != nil {
		rr.spool.Close()
		os.Remove(rr.spool.Name())
	}
}
