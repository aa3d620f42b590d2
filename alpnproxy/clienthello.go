package alpnproxy

import (
	"errors"
	"fmt"
)

// ACMETLS1 is the ALPN protocol ID of the tls-alpn-01 challenge (RFC 8737
// section 6.2): the validation server's ClientHello offers it, and only it.
const ACMETLS1 = "acme-tls/1"

// TLS wire constants (RFC 8446).
const (
	recordHeaderLen        = 5
	recordTypeHandshake    = 0x16
	handshakeClientHello   = 0x01
	extensionServerName    = 0
	extensionALPN          = 16
	serverNameTypeHostName = 0

	// maxRecordLen is the largest TLSPlaintext.length allowed (RFC 8446
	// section 5.1: 2^14). A ClientHello is sent in plaintext records.
	maxRecordLen = 1 << 14
)

// ErrNotClientHello is wrapped by every error [ParseClientHello] returns:
// the bytes are not a complete, well-formed TLS ClientHello record.
var ErrNotClientHello = errors.New("not a TLS ClientHello")

// ClientHello is what the proxy needs of a ClientHello: where it is headed
// and which application protocols it offers.
type ClientHello struct {
	// ServerName is the SNI host name; empty when the client sent none.
	ServerName string
	// ALPNProtocols are the offered protocols in the client's order; nil
	// when the client sent no ALPN extension.
	ALPNProtocols []string
}

// OffersACME reports whether the ClientHello offers the acme-tls/1 protocol.
func (h *ClientHello) OffersACME() bool {
	for _, p := range h.ALPNProtocols {
		if p == ACMETLS1 {
			return true
		}
	}
	return false
}

// ParseClientHello parses record, the first TLS record a client sent
// (header included), as a ClientHello far enough to read its server name and
// ALPN protocols. The record is untrusted input: every length is checked
// against what is left, and nothing is allocated beyond the strings
// returned.
//
// The ClientHello must be complete within record: a handshake message
// fragmented over several records (legal, but not done by ACME validation
// servers or browsers for hellos under 16 KiB) is reported as truncated.
// Bytes after the record are ignored.
func ParseClientHello(record []byte) (*ClientHello, error) {
	r := reader(record)
	typ, ok1 := r.u8()
	major, ok2 := r.u8()
	_, ok3 := r.u8() // minor version: any, clients send 0x01 or 0x03 here
	body, ok4 := r.vec16()
	if !ok1 || !ok2 || !ok3 {
		return nil, notHello("short record header")
	}
	if typ != recordTypeHandshake {
		return nil, notHello(fmt.Sprintf("record type %#x, want handshake", typ))
	}
	if major != 3 {
		return nil, notHello(fmt.Sprintf("record version major %d, want 3", major))
	}
	if !ok4 {
		return nil, notHello("record truncated")
	}
	if len(body) > maxRecordLen {
		return nil, notHello(fmt.Sprintf("record of %d bytes, over the limit of %d", len(body), maxRecordLen))
	}
	return parseHandshake(body)
}

// parseHandshake parses a handshake message holding a ClientHello (RFC 8446
// section 4.1.2).
func parseHandshake(data []byte) (*ClientHello, error) {
	r := reader(data)
	msgType, ok := r.u8()
	if !ok {
		return nil, notHello("empty handshake record")
	}
	if msgType != handshakeClientHello {
		return nil, notHello(fmt.Sprintf("handshake type %d, want ClientHello", msgType))
	}
	msg, ok := r.vec24()
	if !ok {
		return nil, notHello("ClientHello truncated or fragmented over records")
	}
	r = reader(msg)
	if !r.skip(2+32) || // legacy_version, random
		!r.skipVec8() || // legacy_session_id
		!r.skipVec16() || // cipher_suites
		!r.skipVec8() { // legacy_compression_methods
		return nil, notHello("ClientHello fields truncated")
	}
	hello := &ClientHello{}
	if len(r) == 0 {
		return hello, nil // no extensions (SSL 3.0 style): no ALPN
	}
	exts, ok := r.vec16()
	if !ok || len(r) != 0 {
		return nil, notHello("extensions block malformed")
	}
	seenSNI, seenALPN := false, false
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return nil, notHello("extension truncated")
		}
		var err error
		switch typ {
		case extensionServerName:
			if seenSNI {
				return nil, notHello("duplicate server_name extension")
			}
			seenSNI = true
			hello.ServerName, err = parseSNI(data)
		case extensionALPN:
			if seenALPN {
				return nil, notHello("duplicate ALPN extension")
			}
			seenALPN = true
			hello.ALPNProtocols, err = parseALPN(data)
		}
		if err != nil {
			return nil, err
		}
	}
	return hello, nil
}

// parseSNI returns the host_name of a server_name extension (RFC 6066
// section 3).
func parseSNI(data []byte) (string, error) {
	r := reader(data)
	list, ok := r.vec16()
	if !ok || len(r) != 0 || len(list) == 0 {
		return "", notHello("server_name extension malformed")
	}
	var name string
	for len(list) > 0 {
		typ, ok1 := list.u8()
		v, ok2 := list.vec16()
		if !ok1 || !ok2 {
			return "", notHello("server_name entry truncated")
		}
		if typ == serverNameTypeHostName && name == "" {
			name = string(v)
		}
	}
	return name, nil
}

// parseALPN returns the protocol names of an ALPN extension (RFC 7301
// section 3.1): a non-empty list of non-empty names.
func parseALPN(data []byte) ([]string, error) {
	r := reader(data)
	list, ok := r.vec16()
	if !ok || len(r) != 0 || len(list) == 0 {
		return nil, notHello("ALPN extension malformed")
	}
	var protos []string
	for len(list) > 0 {
		p, ok := list.vec8()
		if !ok || len(p) == 0 {
			return nil, notHello("ALPN protocol name malformed")
		}
		protos = append(protos, string(p))
	}
	return protos, nil
}

func notHello(why string) error { return fmt.Errorf("%w: %s", ErrNotClientHello, why) }

// reader consumes big-endian TLS fields from a byte slice. Every method
// reports false, consuming nothing, when too few bytes are left.
type reader []byte

func (r *reader) u8() (byte, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := (*r)[0]
	*r = (*r)[1:]
	return v, true
}

func (r *reader) u16() (uint16, bool) {
	if len(*r) < 2 {
		return 0, false
	}
	v := uint16((*r)[0])<<8 | uint16((*r)[1])
	*r = (*r)[2:]
	return v, true
}

func (r *reader) skip(n int) bool {
	if n < 0 || len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

// vec returns the next n bytes as a reader.
func (r *reader) vec(n int) (reader, bool) {
	if n < 0 || len(*r) < n {
		return nil, false
	}
	v := (*r)[:n:n]
	*r = (*r)[n:]
	return v, true
}

// vec8, vec16 and vec24 read a vector with a 1-, 2- or 3-byte length prefix.
func (r *reader) vec8() (reader, bool) {
	if len(*r) < 1 {
		return nil, false
	}
	n := int((*r)[0])
	if len(*r)-1 < n {
		return nil, false
	}
	*r = (*r)[1:]
	return r.vec(n)
}

func (r *reader) vec16() (reader, bool) {
	if len(*r) < 2 {
		return nil, false
	}
	n := int((*r)[0])<<8 | int((*r)[1])
	if len(*r)-2 < n {
		return nil, false
	}
	*r = (*r)[2:]
	return r.vec(n)
}

func (r *reader) vec24() (reader, bool) {
	if len(*r) < 3 {
		return nil, false
	}
	n := int((*r)[0])<<16 | int((*r)[1])<<8 | int((*r)[2])
	if len(*r)-3 < n {
		return nil, false
	}
	*r = (*r)[3:]
	return r.vec(n)
}

func (r *reader) skipVec8() bool  { _, ok := r.vec8(); return ok }
func (r *reader) skipVec16() bool { _, ok := r.vec16(); return ok }
