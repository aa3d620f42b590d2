package truststore

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

// TestWriteDone: one line per store changed, none for a failed one.
func TestWriteDone(t *testing.T) {
	root := &x509.Certificate{Raw: []byte("root")}
	var b strings.Builder
	err := WriteDone(&b, root, "trusted", []Result{
		{Store: "system", Where: "/usr/local/share/ca-certificates/x.crt"},
		{Store: "nss", Where: "/home/u/.pki/nssdb", Err: errors.New("certutil failed")},
	})
	want := Name(root) + ": trusted in the system store (/usr/local/share/ca-certificates/x.crt)\n"
	if err != nil || b.String() != want {
		t.Errorf("WriteDone = %q, %v; want %q", b.String(), err, want)
	}
}
