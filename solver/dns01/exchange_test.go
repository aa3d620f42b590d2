package dns01

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestExchangeRetriesLostDatagram: a query whose first datagram gets no
// answer (lost, or dropped by a busy server) is sent again and answered
// within the query's bound, not given up after it.
func TestExchangeRetriesLostDatagram(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int32
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if seen.Add(1) == 1 {
			return // the first datagram is lost
		}
		resp := new(dns.Msg)
		resp.SetReply(r)
		_ = w.WriteMsg(resp)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	m := new(dns.Msg)
	m.SetQuestion("a.test.", dns.TypeTXT)
	start := time.Now()
	resp, err := exchange(t.Context(), pc.LocalAddr().String(), m)
	if err != nil || resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("exchange with the first datagram lost: %v, %v", resp, err)
	}
	if took := time.Since(start); took > 2500*time.Millisecond || seen.Load() != 2 {
		t.Errorf("answered after %s and %d datagrams, want the second, a try's timeout (1 s) later", took, seen.Load())
	}
}
