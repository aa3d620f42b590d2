package renew

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

func TestFailuresAndSummary(t *testing.T) {
	results := []*Result{
		{Base: "a.test", Action: Renewed, Detail: "not_after x"},
		{Base: "b.test", Action: Failed, Err: errors.New("refused")},
		{Base: "c.test", Action: Failed, NotAfter: time.Now(), Detail: "deploy hook failed"},
		{Base: "d.test", Action: Unparsable, Detail: "bad PEM"},
	}
	if n := Failures(results, func(err error) string { return "explained: " + err.Error() }); n != 3 {
		t.Errorf("Failures = %d, want 3", n)
	}
	if results[1].Detail != "explained: refused" || results[2].Detail != "deploy hook failed" {
		t.Errorf("details = %q, %q", results[1].Detail, results[2].Detail)
	}
	var b bytes.Buffer
	WriteSummary(&b, results)
	want := "CERTIFICATE  RESULT      DETAIL\na.test       renewed     not_after x\nb.test       failed      explained: refused\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Errorf("WriteSummary wrote\n%s\nwant it to start\n%s", b.String(), want)
	}
}

func TestShow(t *testing.T) {
	tmp := t.TempDir()
	st := filestore.New(filepath.Join(tmp, "state"))
	dir := certfile.Dir(filepath.Join(tmp, "ssl"))
	var rerr *ReadError
	if err := Show(&bytes.Buffer{}, dir, "a.test"); !errors.As(err, &rerr) || rerr.Name != "a.test" {
		t.Errorf("Show with no files = %v, want a *ReadError", err)
	}
	r := &Renewer{Dir: dir, Storage: st, Want: [][]string{{"a.test", "www.a.test"}},
		Issuers: func(ctx context.Context, s Settings) (*issuer.Chain, func(), error) {
			return &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}, nil, nil
		}}
	r.Override = Settings{CA: "local"}
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Show(&b, dir, "a.test"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"certificate: a.test\n", "names: a.test www.a.test\n", "not_after: ", "renewal settings: ", "  ca = local\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Show wrote\n%s\nwithout %q", b.String(), want)
		}
	}
	// List names it, with its expiry and names.
	b.Reset()
	if err := List(&b, dir); err != nil || !strings.Contains(b.String(), "a.test ") || !strings.Contains(b.String(), "a.test www.a.test\n") {
		t.Errorf("List = %v, wrote\n%s", err, b.String())
	}
	b.Reset()
	if err := List(&b, certfile.Dir(filepath.Join(tmp, "none"))); err != nil || !strings.HasPrefix(b.String(), "no certificates in ") {
		t.Errorf("List of an empty directory = %v, wrote %q", err, b.String())
	}
}

func TestReadWantFile(t *testing.T) {
	if want, err := ReadWantFile(""); want != nil || err != nil {
		t.Errorf(`ReadWantFile("") = %v, %v`, want, err)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte("# certs\na.test www.a.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("a..test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if want, err := ReadWantFile(good); err != nil || len(want) != 1 || len(want[0]) != 2 {
		t.Errorf("ReadWantFile(good) = %v, %v", want, err)
	}
	var werr *WantFileError
	if _, err := ReadWantFile(bad); !errors.As(err, &werr) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("ReadWantFile(bad) = %v, want a *WantFileError naming line 1", err)
	}
	if _, err := ReadWantFile(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadWantFile(absent) = %v", err)
	}
}
