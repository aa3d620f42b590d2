package migrate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/certkeeper/certkeeper/internal/fileowner"
)

// A tool's directory is read as the user running certkeeper import, often
// root, while it may have been written by anyone who could write to it. So
// every importer reads through readFile, which refuses what a tool never
// writes there: a file outside the directory (a symbolic link out of it,
// "..", a path recorded in a configuration that points elsewhere), a file
// that is not regular (a FIFO would block the import forever; /dev/zero or
// /dev/urandom would exhaust memory), and a file larger than any the tools
// write.

// maxFileSize bounds each file an importer reads. A tool's files are a
// few KiB: a chain, a key, a JSON document or a shell configuration.
const maxFileSize = 1 << 20

// dirFS is a tool's directory opened as an os.Root: names resolve inside
// it, and symbolic links are followed only while they stay inside (certbot's
// live/NAME/*.pem link into archive/NAME/, dehydrated's certs/NAME/cert.pem
// to cert-TIME.pem). Files are opened non-blocking, so that opening a FIFO
// returns at once and readFile refuses it instead of waiting for a writer.
type dirFS struct {
	root *os.Root
}

// Open opens name, a slash-separated path relative to the directory.
func (d dirFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := d.root.OpenFile(name, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, d.explain(name, err)
	}
	return f, nil
}

// explain says why name could not be opened when it is a symbolic link
// that leads out of the directory, which os.Root reports only as "path
// escapes from parent".
func (d dirFS) explain(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	fi, lerr := d.root.Lstat(name)
	if lerr != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return err
	}
	target, lerr := d.root.Readlink(name)
	if lerr != nil {
		return err
	}
	return fmt.Errorf("%s is a symbolic link to %s, which leads outside %s: only files inside the tool's directory are read: %w",
		name, target, d.root.Name(), err)
}

// readFile reads name in fsys, which must be a regular file (symbolic links
// inside the directory followed), not empty, and at most maxFileSize
// bytes. Every importer reads through it or readFileIfExists.
func readFile(fsys fs.FS, name string) ([]byte, error) {
	data, err := readRegular(fsys, name)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, fmt.Errorf("%s is empty", name)
	}
	return data, nil
}

// readFileIfExists is readFile for an optional file: absent, it returns
// nil and no error; it may be empty.
func readFileIfExists(fsys fs.FS, name string) ([]byte, error) {
	data, err := readRegular(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// readCertFiles reads the files of one certificate: certFile (the leaf
// and, if chainFile is "", the rest of the chain), chainFile (optional: the
// rest of the chain) and keyFile, and returns the chain (leaf first) and
// the key. A file that cannot be read is reported as a problem of source,
// and ok is false.
func (s *State) readCertFiles(source, certFile, chainFile, keyFile string) (chainPEM, keyPEM []byte, ok bool) {
	cert, err := readFile(s.fsys, certFile)
	if err != nil {
		s.problem(source, "certificate: %w", err)
		return nil, nil, false
	}
	chainPEM = cert // the whole chain, as it was written
	if chainFile != "" {
		chain, err := readFileIfExists(s.fsys, chainFile)
		if err != nil {
			s.problem(source, "chain: %w", err)
			return nil, nil, false
		}
		chainPEM = joinPEM(cert, chain)
	}
	if keyPEM, err = readFile(s.fsys, keyFile); err != nil {
		s.problem(source, "private key: %w", err)
		return nil, nil, false
	}
	return chainPEM, keyPEM, true
}

func readRegular(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file but %s: refusing to read it", name, fileowner.Kind(fi.Mode()))
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("%s is %d bytes, more than the 1 MiB any file of an ACME client's state holds: refusing to read it", name, fi.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s holds more than the 1 MiB any file of an ACME client's state holds: refusing to read it", name)
	}
	return data, nil
}

// subdirs lists the directories in dir, sorted; a missing dir has none.
// Symbolic links to directories are not listed.
func subdirs(fsys fs.FS, dir string) []string {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// filesIn lists the names in dir that end in suffix and are not
// directories, as paths relative to fsys, sorted. Unlike fs.Glob, it takes
// names from a tool's directory (an email, a domain) as they are, never
// as patterns.
func filesIn(fsys fs.FS, dir, suffix string) []string {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), suffix) {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}
