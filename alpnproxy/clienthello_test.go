package alpnproxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// captureClientHello returns the first TLS record a crypto/tls client
// configured by cfg writes.
func captureClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	errc := make(chan error, 1)
	go func() {
		errc <- tls.Client(c, cfg).Handshake() // fails once s is closed
		c.Close()
	}()
	if err := s.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, recordHeaderLen)
	if _, err := io.ReadFull(s, hdr); err != nil {
		t.Fatalf("reading record header: %v", err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatalf("reading record body: %v", err)
	}
	s.Close()
	<-errc
	return append(hdr, body...)
}

func acmeHello(t testing.TB) []byte {
	return captureClientHello(t, &tls.Config{ServerName: "a.test", NextProtos: []string{ACMETLS1}, InsecureSkipVerify: true})
}

func TestParseClientHello(t *testing.T) {
	acme := acmeHello(t)
	browser := captureClientHello(t, &tls.Config{ServerName: "www.b.test", NextProtos: []string{"h2", "http/1.1"}})
	plain := captureClientHello(t, &tls.Config{InsecureSkipVerify: true})
	tests := []struct {
		name      string
		in        []byte
		wantName  string
		wantALPN  []string
		wantACME  bool
		wantError bool
	}{
		{name: "acme", in: acme, wantName: "a.test", wantALPN: []string{ACMETLS1}, wantACME: true},
		{name: "browser", in: browser, wantName: "www.b.test", wantALPN: []string{"h2", "http/1.1"}},
		{name: "no SNI no ALPN", in: plain},
		{name: "trailing bytes ignored", in: append(slices.Clone(acme), 0x17, 3, 3, 0, 1, 0), wantName: "a.test", wantALPN: []string{ACMETLS1}, wantACME: true},
		{name: "empty", in: nil, wantError: true},
		{name: "header only", in: acme[:recordHeaderLen], wantError: true},
		{name: "truncated by one", in: acme[:len(acme)-1], wantError: true},
		{name: "http", in: []byte("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"), wantError: true},
		{name: "alert record", in: []byte{0x15, 3, 3, 0, 2, 2, 40}, wantError: true},
		{name: "server hello type", in: []byte{0x16, 3, 3, 0, 4, 2, 0, 0, 0}, wantError: true},
		{name: "oversized", in: append([]byte{0x16, 3, 1, 0x40, 0x01}, make([]byte, maxRecordLen+1)...), wantError: true},
		{name: "handshake length beyond record", in: []byte{0x16, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff}, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseClientHello(tt.in)
			if tt.wantError {
				if err == nil || !errors.Is(err, ErrNotClientHello) {
					t.Fatalf("ParseClientHello = %+v, %v; want an ErrNotClientHello", h, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseClientHello: %v", err)
			}
			if h.ServerName != tt.wantName || !slices.Equal(h.ALPNProtocols, tt.wantALPN) || h.OffersACME() != tt.wantACME {
				t.Errorf("ParseClientHello = %+v (acme %v), want name %q, ALPN %q, acme %v", h, h.OffersACME(), tt.wantName, tt.wantALPN, tt.wantACME)
			}
		})
	}
	// Every strict prefix of a real ClientHello is refused, never accepted
	// half-read.
	for n := range len(acme) {
		if _, err := ParseClientHello(acme[:n]); err == nil {
			t.Fatalf("ParseClientHello(first %d of %d bytes) succeeded", n, len(acme))
		}
	}
}

// TestSeedFiles checks the fuzz seeds in testdata still parse as what they
// are. They were captured as captureClientHello does, from crypto/tls
// clients limited to X25519 (ALPN acme-tls/1 for a.test; h2 and http/1.1
// for b.test).
func TestSeedFiles(t *testing.T) {
	for file, want := range map[string]bool{"clienthello-acme.bin": true, "clienthello-h2.bin": false} {
		h, err := ParseClientHello(readSeed(t, file))
		if err != nil || h.OffersACME() != want {
			t.Errorf("%s: ParseClientHello = %+v, %v; want OffersACME %v", file, h, err, want)
		}
	}
}

func readSeed(t testing.TB, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// FuzzParseClientHello seeds from files rather than live captures, and
// small ones: a ClientHello is random on each capture, and every fuzz worker
// process runs this function, so live seeds would differ between processes;
// and the fuzzer minimizes each new input for up to a minute, in time square
// in its size, so the 1.5 KB hellos of a default client (an ML-KEM key
// share) stall a 30 s run in minimization.
func FuzzParseClientHello(f *testing.F) {
	acme := readSeed(f, "clienthello-acme.bin")
	f.Add(acme)
	f.Add(readSeed(f, "clienthello-h2.bin"))
	for _, n := range []int{0, 1, 5, 9, 43, 44, 80, len(acme) / 2, len(acme) - 1} {
		f.Add(slices.Clone(acme[:n]))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 3, 1, 0xff, 0xff})
	f.Add(bytes.Repeat([]byte{0x16, 3, 1, 0, 0x20}, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseClientHello(data)
		if err != nil {
			if !errors.Is(err, ErrNotClientHello) {
				t.Fatalf("error %v does not wrap ErrNotClientHello", err)
			}
			return
		}
		if len(data) < recordHeaderLen || data[0] != recordTypeHandshake {
			t.Fatalf("accepted %d bytes that are not a handshake record", len(data))
		}
		for _, p := range h.ALPNProtocols {
			if p == "" {
				t.Fatal("accepted an empty ALPN protocol name")
			}
		}
		// Whatever parsed must be inside the record the header declares.
		n := recordHeaderLen + (int(data[3])<<8 | int(data[4]))
		if h2, err := ParseClientHello(data[:n]); err != nil || h2.ServerName != h.ServerName || !slices.Equal(h2.ALPNProtocols, h.ALPNProtocols) {
			t.Fatalf("parse depends on bytes after the record: %+v vs %+v, %v", h, h2, err)
		}
	})
}
