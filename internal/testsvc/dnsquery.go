package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// DNS record types used by the readiness probe and the tests.
const (
	typeSOA = 6
	typeTXT = 16
)

// dnsAnswer is what dnsQuery reports of a response: its RCODE, whether the
// server was authoritative, and how many answer records it had.
type dnsAnswer struct {
	rcode         int
	authoritative bool
	answers       int
}

// dnsQuery sends one query for name and qtype (class IN) to addr over
// network ("udp" or "tcp") and reads the response header. It is a minimal
// client, enough to tell that a server is up and serving a zone, so that
// this package needs no DNS library.
func dnsQuery(ctx context.Context, network, addr, name string, qtype uint16) (dnsAnswer, error) {
	msg, id, err := dnsMessage(name, qtype)
	if err != nil {
		return dnsAnswer{}, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return dnsAnswer{}, err
	}
	defer conn.Close()
	deadline := time.Now().Add(time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)

	var resp []byte
	if network == "tcp" {
		framed := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
		if _, err := conn.Write(append(framed, msg...)); err != nil {
			return dnsAnswer{}, err
		}
		var n [2]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return dnsAnswer{}, err
		}
		resp = make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(conn, resp); err != nil {
			return dnsAnswer{}, err
		}
	} else {
		if _, err := conn.Write(msg); err != nil {
			return dnsAnswer{}, err
		}
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			return dnsAnswer{}, err
		}
		resp = buf[:n]
	}

	if len(resp) < 12 {
		return dnsAnswer{}, fmt.Errorf("DNS response of %d bytes", len(resp))
	}
	if binary.BigEndian.Uint16(resp[0:2]) != id {
		return dnsAnswer{}, errors.New("DNS response with another ID")
	}
	flags := binary.BigEndian.Uint16(resp[2:4])
	if flags&0x8000 == 0 {
		return dnsAnswer{}, errors.New("DNS response without the QR bit")
	}
	return dnsAnswer{
		rcode:         int(flags & 0x000f),
		authoritative: flags&0x0400 != 0,
		answers:       int(binary.BigEndian.Uint16(resp[6:8])),
	}, nil
}

// dnsMessage builds a query with recursion desired: one question, no
// EDNS.
func dnsMessage(name string, qtype uint16) (msg []byte, id uint16, err error) {
	var b [2]byte
	rand.Read(b[:])
	id = binary.BigEndian.Uint16(b[:])
	msg = binary.BigEndian.AppendUint16(msg, id)
	msg = append(msg, 1, 0) // flags: standard query, RD on (a resolver recurses; an authoritative server ignores it)
	msg = append(msg, 0, 1, 0, 0, 0, 0, 0, 0)
	for label := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
		if len(label) == 0 || len(label) > 63 {
			return nil, 0, fmt.Errorf("DNS name %q has an empty or long label", name)
		}
		msg = append(msg, byte(len(label)))
		msg = append(msg, label...)
	}
	msg = append(msg, 0)
	msg = binary.BigEndian.AppendUint16(msg, qtype)
	msg = binary.BigEndian.AppendUint16(msg, 1) // class IN
	return msg, id, nil
}
