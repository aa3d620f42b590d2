package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/archive"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// certRecord returns a stored certificate record for names: a self-signed
// ECDSA certificate and its key, as storage.MarshalCertificate writes them.
func certRecord(t testing.TB, names ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := storage.MarshalCertificate(&storage.Certificate{
		Names:     names,
		Issuer:    "acme-v02.api.letsencrypt.org-directory",
		ChainPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:    keyPEM,
		NotBefore: tmpl.NotBefore,
		NotAfter:  tmpl.NotAfter,
		Obtained:  now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// accountKeyPEM returns a fresh PEM private key, as stored for an account.
func accountKeyPEM(t testing.TB) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fillState stores what a running certkeeper keeps: an ACME account and
// its key, certificates of two issuers, the local CA, Manager state. It
// returns the keys and values stored.
func fillState(t *testing.T, st storage.Storage) map[string][]byte {
	t.Helper()
	ctx := t.Context()
	const le = "acme-v02.api.letsencrypt.org-directory"
	acct, _ := storage.AccountKey(le, "admin@a.test")
	acctKey, _ := storage.AccountPrivateKey(le, "admin@a.test")
	c1, _ := storage.CertificateKey(le, "a.test")
	c2, _ := storage.CertificateKey(le, "*.b.test")
	c3, _ := storage.CertificateKey("local", "localhost")
	want := map[string][]byte{
		acct:                       []byte(`{"url":"https://acme.test/acct/1","contact":["mailto:admin@a.test"]}`),
		acctKey:                    accountKeyPEM(t),
		c1:                         certRecord(t, "a.test", "www.a.test"),
		c2:                         certRecord(t, "*.b.test"),
		c3:                         certRecord(t, "localhost"),
		storage.StateKey("limits"): []byte(`{}`),
	}
	for k, v := range want {
		if err := st.Store(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	// The local CA writes its own root and intermediate.
	if _, err := (&localca.CA{Storage: st, Logger: slog.New(slog.DiscardHandler)}).RootPEM(ctx); err != nil {
		t.Fatal(err)
	}
	for _, which := range []string{"root", "intermediate"} {
		k := storage.LocalCAKey(which)
		v, err := st.Load(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	return want
}

// dump returns every key of st and its value.
func dump(t *testing.T, st storage.Storage) map[string][]byte {
	t.Helper()
	keys, err := st.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string][]byte, len(keys))
	for _, k := range keys {
		v, err := st.Load(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		m[k] = v
	}
	return m
}

func sameState(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("key %s missing", k)
		} else if !bytes.Equal(g, v) {
			t.Errorf("key %s differs", k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected key %s", k)
		}
	}
}

func export(t *testing.T, st storage.Storage) []byte {
	t.Helper()
	var buf bytes.Buffer
	stats, err := archive.Export(t.Context(), st, &buf)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if stats.Bytes != int64(buf.Len()) {
		t.Errorf("Export reported %d bytes, wrote %d", stats.Bytes, buf.Len())
	}
	return buf.Bytes()
}

func TestExportImportRoundTrip(t *testing.T) {
	srcDir := t.TempDir()
	src := filestore.New(srcDir)
	want := fillState(t, src)

	// A lock held during Export: its lease is not a key and stays home.
	unlock, err := src.Lock(t.Context(), storage.IssueLock("a.test"))
	if err != nil {
		t.Fatal(err)
	}
	arc := export(t, src)
	unlock()

	// The archive: manifest first, then one 0600 regular file per key,
	// sorted, and nothing of the lock.
	zr, err := gzip.NewReader(bytes.NewReader(arc))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o600 {
			t.Errorf("member %s: type %q mode %o, want regular file 0600", hdr.Name, hdr.Typeflag, hdr.Mode)
		}
		if len(names) == 0 {
			var man struct {
				Format  string    `json:"format"`
				Version int       `json:"version"`
				Created time.Time `json:"created"`
				Keys    int       `json:"keys"`
			}
			if err := json.NewDecoder(tr).Decode(&man); err != nil {
				t.Fatal(err)
			}
			if man.Format != "certkeeper-archive" || man.Version != archive.Version || man.Keys != len(want) || time.Since(man.Created) > time.Minute {
				t.Errorf("manifest = %+v", man)
			}
		}
		names = append(names, hdr.Name)
	}
	if len(names) == 0 || names[0] != "certkeeper-archive.json" {
		t.Fatalf("members = %v, want certkeeper-archive.json first", names)
	}
	if !slices.IsSorted(names[1:]) || len(names[1:]) != len(want) {
		t.Errorf("key members = %v, want the %d keys sorted", names[1:], len(want))
	}
	for _, n := range names {
		if strings.Contains(n, "lock") || strings.Contains(n, "lease") {
			t.Errorf("lock lease exported: %s", n)
		}
	}

	dstDir := filepath.Join(t.TempDir(), "new") // does not exist yet
	dst := filestore.New(dstDir)
	stats, err := archive.Import(t.Context(), dst, bytes.NewReader(arc), archive.ImportOptions{})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if !reflect.DeepEqual(stats, archive.ImportStats{Keys: len(want), Imported: len(want)}) {
		t.Errorf("Import stats = %+v, want %d keys imported", stats, len(want))
	}
	sameState(t, dump(t, dst), want)
	if runtime.GOOS != "windows" {
		err := filepath.WalkDir(dstDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if fi, _ := d.Info(); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// Again: everything is already there.
	stats, err = archive.Import(t.Context(), dst, bytes.NewReader(arc), archive.ImportOptions{})
	if err != nil {
		t.Fatalf("second Import: %v", err)
	}
	if !reflect.DeepEqual(stats, archive.ImportStats{Keys: len(want), Skipped: len(want)}) {
		t.Errorf("second Import stats = %+v, want all %d skipped", stats, len(want))
	}
}

func TestExportEmpty(t *testing.T) {
	arc := export(t, filestore.New(filepath.Join(t.TempDir(), "none")))
	dst := filestore.New(t.TempDir())
	stats, err := archive.Import(t.Context(), dst, bytes.NewReader(arc), archive.ImportOptions{})
	if err != nil || !reflect.DeepEqual(stats, archive.ImportStats{}) {
		t.Errorf("Import(empty archive) = %+v, %v", stats, err)
	}
}

func TestImportConflicts(t *testing.T) {
	other := certRecord(t, "a.test") // issued before the archive's: replaced with Overwrite
	time.Sleep(10 * time.Millisecond)
	src := filestore.New(t.TempDir())
	want := fillState(t, src)
	arc := export(t, src)

	dst := filestore.New(t.TempDir())
	ctx := t.Context()
	// One key identical, two different, the rest absent.
	c1, _ := storage.CertificateKey("acme-v02.api.letsencrypt.org-directory", "a.test")
	for k, v := range map[string][]byte{
		c1:                         other,
		storage.LocalCAKey("root"): []byte(`{"other":"root"}`),
		storage.StateKey("limits"): want[storage.StateKey("limits")],
	} {
		if err := dst.Store(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	before := dump(t, dst)

	_, err := archive.Import(ctx, dst, bytes.NewReader(arc), archive.ImportOptions{})
	var cerr *archive.ConflictError
	if !errors.As(err, &cerr) {
		t.Fatalf("Import over different values: err = %v, want *ConflictError", err)
	}
	if wantKeys := []string{c1, storage.LocalCAKey("root")}; !slices.Equal(cerr.Keys, wantKeys) {
		t.Errorf("conflicts = %v, want %v", cerr.Keys, wantKeys)
	}
	if !strings.Contains(err.Error(), c1) || !strings.Contains(err.Error(), "nothing was imported") {
		t.Errorf("error does not name the key or say nothing was imported: %v", err)
	}
	sameState(t, dump(t, dst), before) // nothing written

	stats, err := archive.Import(ctx, dst, bytes.NewReader(arc), archive.ImportOptions{Overwrite: true})
	if err != nil {
		t.Fatalf("Import with Overwrite: %v", err)
	}
	wantStats := archive.ImportStats{Keys: len(want), Imported: len(want) - 1, Overwritten: 2, Skipped: 1}
	if !reflect.DeepEqual(stats, wantStats) {
		t.Errorf("Import with Overwrite: stats = %+v, want %+v", stats, wantStats)
	}
	sameState(t, dump(t, dst), want)
}

// TestImportKeepsNewer: a certificate record storage holds that was issued
// after the archive's (a renewal since the backup) is kept, with or
// without Overwrite, and named; it is not a conflict.
func TestImportKeepsNewer(t *testing.T) {
	src := filestore.New(t.TempDir())
	want := fillState(t, src)
	arc := export(t, src)
	time.Sleep(10 * time.Millisecond)
	c1, _ := storage.CertificateKey("acme-v02.api.letsencrypt.org-directory", "a.test")
	renewed := certRecord(t, "a.test")
	dst := filestore.New(t.TempDir())
	if err := dst.Store(t.Context(), c1, renewed); err != nil {
		t.Fatal(err)
	}
	for _, overwrite := range []bool{false, true} {
		stats, err := archive.Import(t.Context(), dst, bytes.NewReader(arc), archive.ImportOptions{Overwrite: overwrite})
		if err != nil || !slices.Equal(stats.Newer, []string{c1}) {
			t.Errorf("Overwrite %v: %+v, %v; want %s kept as newer", overwrite, stats, err, c1)
		}
		if got, _ := dst.Load(t.Context(), c1); !bytes.Equal(got, renewed) {
			t.Errorf("Overwrite %v: the renewed certificate was replaced by the archive's", overwrite)
		}
	}
	_ = want
	// Copy (storage migrate) keeps it the same way, and its verification
	// does not count it as a copy that differs (a migration trial's
	// migrate --overwrite rolled a renewed certificate back).
	for _, overwrite := range []bool{false, true} {
		stats, err := archive.Copy(t.Context(), src, dst, archive.ImportOptions{Overwrite: overwrite})
		if err != nil || !slices.Equal(stats.Newer, []string{c1}) {
			t.Errorf("Copy, Overwrite %v: %+v, %v; want %s kept as newer", overwrite, stats, err, c1)
		}
		if got, _ := dst.Load(t.Context(), c1); !bytes.Equal(got, renewed) {
			t.Errorf("Copy, Overwrite %v: the renewed certificate was replaced by --from's", overwrite)
		}
	}
}

// archiveMember is one member of a hand-made archive.
type archiveMember struct {
	name     string
	typeflag byte
	body     []byte
	linkname string
}

// makeArchive writes a tar.gz of a manifest (unless manifest is nil) and
// members.
func makeArchive(t testing.TB, manifest any, members ...archiveMember) []byte {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	if manifest != nil {
		data, err := json.Marshal(manifest)
		if err != nil {
			t.Fatal(err)
		}
		members = append([]archiveMember{{name: "certkeeper-archive.json", body: data}}, members...)
	}
	for _, m := range members {
		tf := m.typeflag
		if tf == 0 {
			tf = tar.TypeReg
		}
		hdr := &tar.Header{Typeflag: tf, Name: m.name, Mode: 0o600, Linkname: m.linkname, ModTime: time.Now()}
		if tf == tar.TypeReg {
			hdr.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.body); err != nil && tf == tar.TypeReg {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return gzipBytes(t, tarBuf.Bytes())
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func manifestFor(keys int) map[string]any {
	return map[string]any{"format": "certkeeper-archive", "version": 1, "created": time.Now(), "keys": keys}
}

// TestImportHostile: archives that are damaged or try to escape are
// refused with an error naming the problem, and nothing is written. Each
// starts with a valid member, to show it is not stored either.
func TestImportHostile(t *testing.T) {
	good := archiveMember{name: "accounts/x/default.key", body: accountKeyPEM(t)}
	rec := certRecord(t, "a.test")
	var fields map[string]any
	if err := json.Unmarshal(rec, &fields); err != nil {
		t.Fatal(err)
	}
	fields["chain_pem"] = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	badRecord, _ := json.Marshal(fields)
	keyOnly, _ := json.Marshal(map[string]any{"names": []string{"a.test"}, "key_pem": accountKeyPEM(t)})
	fields = nil
	if err := json.Unmarshal(rec, &fields); err != nil {
		t.Fatal(err)
	}
	fields["names"] = []string{}
	noNames, _ := json.Marshal(fields)
	valid := makeArchive(t, manifestFor(2), good, archiveMember{name: "certificates/x/a.test.json", body: rec})

	tests := []struct {
		name    string
		archive []byte
		opts    archive.ImportOptions
		want    string
	}{
		{"traversal", makeArchive(t, manifestFor(2), good, archiveMember{name: "../x", body: []byte("x")}), archive.ImportOptions{}, `"../x" leaves the storage`},
		{"inner traversal", makeArchive(t, manifestFor(2), good, archiveMember{name: "certificates/../../x", body: []byte("x")}), archive.ImportOptions{}, `leaves the storage`},
		{"absolute", makeArchive(t, manifestFor(2), good, archiveMember{name: "/etc/x", body: []byte("x")}), archive.ImportOptions{}, `"/etc/x" is an absolute path`},
		{"symlink", makeArchive(t, manifestFor(2), good, archiveMember{name: "certificates/x/a.test.json", typeflag: tar.TypeSymlink, linkname: "/etc/passwd"}), archive.ImportOptions{}, "is a link"},
		{"hard link", makeArchive(t, manifestFor(2), good, archiveMember{name: "accounts/x/y.key", typeflag: tar.TypeLink, linkname: "accounts/x/default.key"}), archive.ImportOptions{}, "is a link"},
		{"device", makeArchive(t, manifestFor(2), good, archiveMember{name: "a/dev", typeflag: tar.TypeChar}), archive.ImportOptions{}, "is a device"},
		{"directory", makeArchive(t, manifestFor(2), good, archiveMember{name: "certificates/", typeflag: tar.TypeDir}), archive.ImportOptions{}, "is a directory"},
		{"invalid key", makeArchive(t, manifestFor(2), good, archiveMember{name: "a/.hidden", body: []byte("x")}), archive.ImportOptions{}, "invalid storage key"},
		{"huge member", makeArchive(t, manifestFor(2), good, archiveMember{name: "state/big.bin", body: make([]byte, 16<<20+1)}), archive.ImportOptions{}, "more than the 16777216 a key may hold"},
		{"over total", valid, archive.ImportOptions{MaxSize: 4096}, "more than 4096 bytes uncompressed"},
		{"truncated", valid[:len(valid)/2], archive.ImportOptions{}, "truncated or corrupt"},
		{"no gzip trailer", valid[:len(valid)-8], archive.ImportOptions{}, "truncated or corrupt"},
		{"corrupt", flipByte(valid, len(valid)-6), archive.ImportOptions{}, "truncated or corrupt"},
		{"trailing garbage", append(slices.Clip(valid), "garbage"...), archive.ImportOptions{}, "truncated or corrupt"},
		{"not gzip", []byte("certificates/x/a.test.json\n"), archive.ImportOptions{}, "not gzip-compressed"},
		{"empty", nil, archive.ImportOptions{}, "empty input"},
		{"no manifest", makeArchive(t, nil, good), archive.ImportOptions{}, "first member is \"accounts/x/default.key\""},
		{"other tar.gz", makeArchive(t, map[string]any{"version": 1}, good), archive.ImportOptions{}, `format ""`},
		{"unknown version", makeArchive(t, map[string]any{"format": "certkeeper-archive", "version": 2, "keys": 1}, good), archive.ImportOptions{}, "format version 2 is not supported"},
		{"missing keys", makeArchive(t, manifestFor(3), good), archive.ImportOptions{}, "holds 1 keys, its manifest counts 3"},
		{"extra keys", makeArchive(t, manifestFor(1), good, archiveMember{name: "a/b", body: []byte("x")}), archive.ImportOptions{}, "more keys than the 1"},
		{"duplicate", makeArchive(t, manifestFor(2), good, good), archive.ImportOptions{}, "appears twice"},
		{"bad certificate", makeArchive(t, manifestFor(2), good, archiveMember{name: "certificates/x/a.test.json", body: badRecord}), archive.ImportOptions{}, "certificates/x/a.test.json is not a valid certificate record"},
		{"certificate without chain", makeArchive(t, manifestFor(2), good, archiveMember{name: "certificates/x/a.test.json", body: keyOnly}), archive.ImportOptions{}, "certificates/x/a.test.json is not a valid certificate record"},
		{"certificate without names", makeArchive(t, manifestFor(2), good, archiveMember{name: "certificates/x/a.test.json", body: noNames}), archive.ImportOptions{}, "holds no names"},
		{"certificate under another name's key", makeArchive(t, manifestFor(2), good, archiveMember{name: "certificates/x/b.test.json", body: rec}), archive.ImportOptions{}, "not among its names"},
		{"certificate not JSON", makeArchive(t, manifestFor(2), good, archiveMember{name: "certificates/x/a.test.json", body: []byte("-----BEGIN PRIVATE KEY-----")}), archive.ImportOptions{}, "not a valid certificate record"},
		{"bad account key", makeArchive(t, manifestFor(2), good, archiveMember{name: "accounts/x/y.key", body: []byte("not a key")}), archive.ImportOptions{}, "accounts/x/y.key is not a valid private key"},
		{"bad JSON", makeArchive(t, manifestFor(2), good, archiveMember{name: "localca/root.json", body: []byte("{")}), archive.ImportOptions{}, "localca/root.json is not valid JSON"},
		{"foreign key", makeArchive(t, manifestFor(3), good, archiveMember{name: "archive/a.test/privkey1.pem", body: accountKeyPEM(t)}, archiveMember{name: "renewal/a.test.conf", body: []byte("x")}),
			archive.ImportOptions{}, "2 keys certkeeper never writes (archive/a.test/privkey1.pem, renewal/a.test.conf)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := archive.Import(t.Context(), filestore.New(dir), bytes.NewReader(tt.archive), tt.opts)
			if !errors.Is(err, archive.ErrInvalid) {
				t.Fatalf("Import = %v, want ErrInvalid", err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Import = %v, want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error quotes key material: %v", err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Errorf("Import wrote %d entries into the storage, want none", len(entries))
			}
		})
	}
}

// TestImportReadFails: an input that fails, or a cancelled context, is
// reported as such, not as a damaged archive, and nothing is written.
func TestImportReadFails(t *testing.T) {
	src := filestore.New(t.TempDir())
	fillState(t, src)
	arc := export(t, src)
	dir := t.TempDir()
	ioErr := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(arc[:len(arc)/2]), iotest.ErrReader(ioErr))
	_, err := archive.Import(t.Context(), filestore.New(dir), r, archive.ImportOptions{})
	if !errors.Is(err, ioErr) || errors.Is(err, archive.ErrInvalid) {
		t.Errorf("Import(failing reader) = %v, want the read error", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = archive.Import(ctx, filestore.New(dir), bytes.NewReader(arc), archive.ImportOptions{})
	if !errors.Is(err, context.Canceled) || errors.Is(err, archive.ErrInvalid) {
		t.Errorf("Import(cancelled) = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Import wrote %d entries, want none", len(entries))
	}
}

func flipByte(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0xff
	return c
}

// failingStore fails its nth Store and every later one, as a full disk
// does: with Stores running at once, which succeed does not depend on
// which ends first.
type failingStore struct {
	storage.Storage
	n      int64
	stores atomic.Int64
}

func (s *failingStore) Store(ctx context.Context, key string, value []byte) error {
	if s.stores.Add(1) >= s.n {
		return errors.New("disk full")
	}
	return s.Storage.Store(ctx, key, value)
}

// TestImportStoreFails: a Storage failing part way reports how far Import
// got, account keys went first, and a second run finishes.
func TestImportStoreFails(t *testing.T) {
	src := filestore.New(t.TempDir())
	want := fillState(t, src)
	arc := export(t, src)

	dst := filestore.New(t.TempDir())
	stats, err := archive.Import(t.Context(), &failingStore{Storage: dst, n: 3}, bytes.NewReader(arc), archive.ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "2 of 8 keys stored") {
		t.Fatalf("Import = %v, want the storage error and how far it got", err)
	}
	if stats.Imported != 2 {
		t.Errorf("Imported = %d, want 2", stats.Imported)
	}
	keys, _ := dst.List(t.Context(), "accounts/")
	if len(keys) == 0 || !strings.HasSuffix(keys[len(keys)-1], ".key") {
		t.Errorf("first keys stored: %v, want the account key first", keys)
	}
	if _, err := archive.Import(t.Context(), dst, bytes.NewReader(arc), archive.ImportOptions{}); err != nil {
		t.Fatalf("second Import: %v", err)
	}
	sameState(t, dump(t, dst), want)
}

// memStore is a Storage in memory for the fuzz target (filestore's fsyncs
// would leave the fuzzer little time), recording invalid keys it is given.
type memStore struct {
	mu      sync.Mutex
	m       map[string][]byte
	invalid []string
}

func (s *memStore) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[key]; ok {
		return v, nil
	}
	return nil, fs.ErrNotExist
}

func (s *memStore) Store(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if storage.ValidateKey(key) != nil {
		s.invalid = append(s.invalid, key)
	}
	if s.m == nil {
		s.m = make(map[string][]byte)
	}
	s.m[key] = value
	return nil
}

func (s *memStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *memStore) List(_ context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (s *memStore) Lock(context.Context, string) (func(), error) { return func() {}, nil }

// FuzzImport: no input makes Import panic, store an invalid key, store
// anything and then fail, or store a value the archive did not hold.
//
// Inputs stay small, so that the engine, which minimises every input
// that finds new coverage for up to a minute and quadratically in its
// length, spends its time fuzzing: a tar pads every member to 512 bytes,
// so the fuzzer writes the members in a compact form (see fuzzArchive),
// with a certificate record or a key from a fixture where it asks, and
// the harness turns them into a tar.gz, which cut then truncates or
// damages. In mode fuzzRaw the input is the archive itself, to fuzz the
// gzip and tar layers below (the seed is an archive Export wrote). Longer
// inputs are not tried.
func FuzzImport(f *testing.F) {
	ctx := context.Background()
	src := &memStore{}
	a1, _ := storage.AccountPrivateKey("x", "")
	for k, v := range map[string][]byte{a1: accountKeyPEM(f), "state/limits.json": []byte(`{"a":1}`)} {
		if err := src.Store(ctx, k, v); err != nil {
			f.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := archive.Export(ctx, src, &buf); err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(fuzzRaw), uint16(0), buf.Bytes())
	f.Add(uint8(fuzzRaw), uint16(0), []byte{})
	c1, _ := storage.CertificateKey("local", "a.test")
	member := func(typeflag byte, name string, body []byte) []byte {
		return append(append([]byte{typeflag}, name+"\x00"...), append(body, 0)...)
	}
	f.Add(uint8(fuzzMembers), uint16(0), slices.Concat(member(tar.TypeReg, a1, accountKeyPEM(f)),
		member(tar.TypeReg, "state/limits.json", []byte(`{"a":1}`))))
	f.Add(uint8(fuzzMembers), uint16(0), member(tar.TypeReg, c1, []byte(`{}`)))
	f.Add(uint8(fuzzMembers), uint16(0), member(fuzzTypeRecord, c1, nil))
	f.Add(uint8(fuzzMembers), uint16(0), slices.Concat(member(fuzzTypeKey, a1, nil), member(fuzzTypeRecord, "certificates/x/a.test.key", nil)))
	f.Add(uint8(fuzzMembers), uint16(0), member(tar.TypeReg, "../x", []byte("x")))
	f.Add(uint8(fuzzMembers), uint16(0), member(tar.TypeSymlink, "a/b", []byte("/etc")))
	f.Add(uint8(fuzzMembers), uint16(100), member(tar.TypeReg, a1, accountKeyPEM(f)))
	f.Add(uint8(fuzzMembers), uint16(0x8000|20), member(tar.TypeReg, a1, accountKeyPEM(f)))
	f.Add(uint8(fuzzManifest), uint16(0), slices.Concat(member(tar.TypeReg, "certkeeper-archive.json",
		[]byte(`{"format":"certkeeper-archive","version":1,"keys":1}`)), member(tar.TypeReg, "state/x.json", []byte(`[]`))))

	fixture := map[byte][]byte{fuzzTypeRecord: certRecord(f, "a.test"), fuzzTypeKey: accountKeyPEM(f)}

	f.Fuzz(func(t *testing.T, mode uint8, cut uint16, data []byte) {
		if len(data) > maxFuzzImportInput {
			return
		}
		in, members := data, map[string][]byte(nil)
		if mode%fuzzModes != fuzzRaw {
			in, members = fuzzArchive(mode%fuzzModes == fuzzManifest, data, fixture)
			in = damage(in, cut)
		}
		st := &memStore{}
		stats, err := archive.Import(ctx, st, bytes.NewReader(in), archive.ImportOptions{MaxSize: 1 << 20, MaxMemberSize: 64 << 10})
		if len(st.invalid) > 0 {
			t.Fatalf("Import stored invalid keys %q", st.invalid)
		}
		if err != nil && len(st.m) > 0 {
			t.Fatalf("Import failed (%v) after storing %d keys", err, len(st.m))
		}
		if err == nil && stats.Imported != len(st.m) {
			t.Fatalf("Import reported %d keys imported, stored %d", stats.Imported, len(st.m))
		}
		if members != nil && cut == 0 {
			for k, v := range st.m {
				if want, ok := members[k]; !ok || !bytes.Equal(v, want) {
					t.Fatalf("Import stored %s with a value the archive does not hold there", k)
				}
			}
		}
	})
}

// maxFuzzImportInput bounds FuzzImport's input: minimising one of this
// length takes about a second.
const maxFuzzImportInput = 512

// FuzzImport's modes.
const (
	fuzzRaw      = iota // the input is the archive
	fuzzMembers         // the input is fuzzArchiveMembers; the harness writes a manifest counting them
	fuzzManifest        // the input is fuzzArchiveMembers, the first one the manifest
	fuzzModes
)

// Member types of fuzzArchive that are not tar's: a regular file whose
// content is the fixture's certificate record, or account key, followed by
// the member's.
const (
	fuzzTypeRecord = 'C'
	fuzzTypeKey    = 'K'
)

// fuzzArchive builds a tar.gz from data, members in a compact form: for
// each, its tar type flag (one byte; fuzzTypeRecord and fuzzTypeKey take
// their content from fixture), its name, NUL, its content, NUL. Unless
// withManifest, a manifest counting the members comes first. It returns
// the archive and the content of each regular member, by name.
func fuzzArchive(withManifest bool, data []byte, fixture map[byte][]byte) ([]byte, map[string][]byte) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	fields := bytes.Split(data, []byte{0})
	var hdrs []*tar.Header
	var bodies [][]byte
	for i := 0; i+1 < len(fields); i += 2 {
		if len(fields[i]) == 0 {
			continue
		}
		hdr := &tar.Header{Typeflag: fields[i][0], Name: string(fields[i][1:]), Mode: 0o600, ModTime: time.Unix(1.8e9, 0)}
		body := fields[i+1]
		if prefix, ok := fixture[hdr.Typeflag]; ok {
			hdr.Typeflag, body = tar.TypeReg, slices.Concat(prefix, body)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			hdr.Size = int64(len(body))
		case tar.TypeSymlink, tar.TypeLink:
			hdr.Linkname, body = string(body), nil
		default:
			body = nil
		}
		hdrs, bodies = append(hdrs, hdr), append(bodies, body)
	}
	if !withManifest {
		man := fmt.Appendf(nil, `{"format":"certkeeper-archive","version":%d,"keys":%d}`, archive.Version, len(hdrs))
		hdrs = append([]*tar.Header{{Typeflag: tar.TypeReg, Name: "certkeeper-archive.json", Size: int64(len(man)), Mode: 0o600,
			ModTime: time.Unix(1.8e9, 0)}}, hdrs...)
		bodies = append([][]byte{man}, bodies...)
	}
	members := map[string][]byte{}
	for i, hdr := range hdrs {
		if tw.WriteHeader(hdr) != nil {
			break // not encodable as tar: the archive ends here
		}
		if _, err := tw.Write(bodies[i]); err != nil {
			break
		}
		if hdr.Typeflag == tar.TypeReg {
			members[hdr.Name] = bodies[i]
		}
	}
	tw.Close()
	return storedGzip(tarBuf.Bytes()), members
}

// damage returns archive cut short (cut below 0x8000: to cut bytes, modulo
// its length) or with one byte flipped (cut with 0x8000: at cut&0x7fff,
// modulo its length). Zero leaves it whole.
func damage(arc []byte, cut uint16) []byte {
	if cut == 0 || len(arc) == 0 {
		return arc
	}
	if cut&0x8000 == 0 {
		return arc[:int(cut)%len(arc)]
	}
	out := slices.Clone(arc)
	out[int(cut&0x7fff)%len(out)] ^= 0xff
	return out
}

// storedGzip wraps data in a gzip stream of stored (uncompressed) deflate
// blocks (RFC 1951 §3.2.4, RFC 1952), as valid as any gzip writer's output
// but made in microseconds, without a compressor's megabyte of tables.
func storedGzip(data []byte) []byte {
	out := make([]byte, 0, 10+len(data)+5*(len(data)/0xffff+1)+8)
	out = append(out, 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff) // magic, deflate, no flags, no mtime, unknown OS
	for rest := data; ; {
		n := min(len(rest), 0xffff)
		final := byte(0)
		if n == len(rest) {
			final = 1
		}
		out = append(out, final, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		out = append(out, rest[:n]...)
		rest = rest[n:]
		if final == 1 {
			break
		}
	}
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(data))
	return binary.LittleEndian.AppendUint32(out, uint32(len(data)))
}

// TestStoredGzip: storedGzip's output reads back, through compress/gzip,
// as its input, whatever its length.
func TestStoredGzip(t *testing.T) {
	for _, n := range []int{0, 1, 0xffff, 0x10000, 3*0xffff + 7} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		zr, err := gzip.NewReader(bytes.NewReader(storedGzip(data)))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes: read back %d bytes, %v", n, len(got), err)
		}
	}
}
