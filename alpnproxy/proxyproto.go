package alpnproxy

import (
	"encoding/binary"
	"net"
)

// proxyV2Signature starts every PROXY protocol v2 header (the PROXY
// protocol specification, section 2.2).
var proxyV2Signature = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

const (
	proxyV2Local = 0x20 // version 2, command LOCAL
	proxyV2Proxy = 0x21 // version 2, command PROXY
	proxyV2TCP4  = 0x11 // AF_INET, STREAM
	proxyV2TCP6  = 0x21 // AF_INET6, STREAM
)

// proxyHeaderLocal returns a PROXY protocol v2 header with the LOCAL
// command: a connection the proxy makes on its own behalf, whose own
// addresses the receiver uses.
func proxyHeaderLocal() []byte {
	return append(append([]byte(nil), proxyV2Signature[:]...), proxyV2Local, 0x00, 0x00, 0x00)
}

// proxyHeaderV2 returns the PROXY protocol v2 header announcing a
// connection from src to dst. When either is not a TCP address (a pipe in
// tests, a Unix socket), it returns a LOCAL header, which tells the
// receiver to use the connection's own addresses.
func proxyHeaderV2(src, dst net.Addr) []byte {
	s, ok1 := src.(*net.TCPAddr)
	d, ok2 := dst.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return proxyHeaderLocal()
	}
	h := append([]byte(nil), proxyV2Signature[:]...)
	s4, d4 := s.IP.To4(), d.IP.To4()
	var sIP, dIP []byte
	fam := byte(proxyV2TCP6)
	if s4 != nil && d4 != nil {
		fam, sIP, dIP = proxyV2TCP4, s4, d4
	} else {
		sIP, dIP = s.IP.To16(), d.IP.To16()
		if sIP == nil || dIP == nil {
			return proxyHeaderLocal()
		}
	}
	h = append(h, proxyV2Proxy, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(2*len(sIP)+4))
	h = append(h, sIP...)
	h = append(h, dIP...)
	h = binary.BigEndian.AppendUint16(h, uint16(s.Port))
	h = binary.BigEndian.AppendUint16(h, uint16(d.Port))
	return h
}
