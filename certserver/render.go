package certserver

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strconv"
	"time"

	"github.com/certkeeper/certkeeper"
	"golang.org/x/crypto/ocsp"
)

// Certificate is the JSON answer of GET /v1/certificates/{name}.
type Certificate struct {
	Names      []string  `json:"names"`
	Cert       string    `json:"cert"` // PEM chain, leaf first
	Key        string    `json:"key"`  // PEM (PKCS #8)
	NotAfter   time.Time `json:"not_after"`
	TTLSeconds int64     `json:"ttl_seconds"`
	OCSPStaple []byte    `json:"ocsp_staple,omitempty"` // DER; base64 in JSON
	SelfSigned bool      `json:"self_signed"`
}

// rendered is the answer for one name, made once per second (ttl_seconds
// counts down) or when the certificate changes, so that a cached request
// costs a map lookup and a write.
type rendered struct {
	cert *tls.Certificate
	at   int64 // unix second it was made
	json []byte
	pem  []byte
	ocsp ocspAnswer
	ttl  int64 // ttl_seconds of the answer
}

// ocspAnswer is the staple with the headers it is served with.
type ocspAnswer struct {
	der          []byte
	etag         string
	lastModified string
	expires      time.Time
}

// maxRenders bounds the render cache; beyond it, it is cleared.
const maxRenders = 10_000

// render returns the answer for served, from the cache when it is fresh.
func (h *Handler) render(name string, served certkeeper.Served) *rendered {
	now := time.Now()
	if v, ok := h.renders.Load(name); ok {
		rd := v.(*rendered)
		if rd.cert == served.Certificate && rd.at == now.Unix() {
			return rd
		}
	}
	rd, err := h.make(served, now)
	if err != nil {
		// A certificate the Manager serves always encodes; this is a bug.
		h.logger().Error("encoding a certificate for the API", "name", name, "err", err)
		return &rendered{}
	}
	if _, loaded := h.renders.Swap(name, rd); !loaded && h.nRenders.Add(1) > maxRenders {
		h.renders.Clear()
		h.nRenders.Store(0)
	}
	return rd
}

func (h *Handler) make(served certkeeper.Served, now time.Time) (*rendered, error) {
	tc := served.Certificate
	var chain bytes.Buffer
	for _, der := range tc.Certificate {
		if err := pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
			return nil, err
		}
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(tc.PrivateKey)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	leaf := tc.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(tc.Certificate[0]); err != nil {
			return nil, err
		}
	}
	awaitingStaple := len(leaf.OCSPServer) > 0 && len(tc.OCSPStaple) == 0
	ttlSeconds := ttl(leaf, now, h.maxTTL(), served.SelfSigned, awaitingStaple)
	body, err := json.Marshal(Certificate{
		Names: served.Names, Cert: chain.String(), Key: string(keyPEM), NotAfter: leaf.NotAfter.UTC(),
		TTLSeconds: ttlSeconds, OCSPStaple: tc.OCSPStaple, SelfSigned: served.SelfSigned,
	})
	if err != nil {
		return nil, err
	}
	rd := &rendered{cert: tc, at: now.Unix(), json: append(body, '\n'), pem: append(chain.Bytes(), keyPEM...), ttl: ttlSeconds}
	if len(tc.OCSPStaple) > 0 {
		sum := sha256.Sum256(tc.OCSPStaple)
		rd.ocsp = ocspAnswer{der: tc.OCSPStaple, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		if resp, err := ocsp.ParseResponse(tc.OCSPStaple, nil); err == nil {
			rd.ocsp.lastModified = resp.ThisUpdate.UTC().Format(http.TimeFormat)
			rd.ocsp.expires = resp.NextUpdate
		}
	}
	return rd, nil
}

// shortTTL is the longest an answer that should soon be replaced may be
// cached: a self-signed fallback (a real certificate should follow), or a
// certificate with an OCSP responder whose staple has not arrived yet
// (a client keeping it for an hour would serve it unstapled that long).
const shortTTL = time.Minute

// ttl is how long a client may keep the certificate before asking again:
// a sixth of its remaining life, so that a renewal (due in the last third
// of its life) reaches clients well before it expires; at most maxTTL
// (shortTTL for a self-signed answer or one awaiting its staple), at least
// a second.
func ttl(leaf *x509.Certificate, now time.Time, maxTTL time.Duration, selfSigned, awaitingStaple bool) int64 {
	d := leaf.NotAfter.Sub(now) / 6
	if selfSigned || awaitingStaple {
		maxTTL = min(maxTTL, shortTTL)
	}
	d = min(d, maxTTL)
	return max(int64(d/time.Second), 1)
}

// serveOCSP answers GET /v1/ocsp/{name}: the staple as DER, cacheable
// until the response's nextUpdate, or for the certificate's ttl when it
// names none; 404 when there is none.
func (h *Handler) serveOCSP(w http.ResponseWriter, r *http.Request, rd *rendered) int {
	a := rd.ocsp
	if len(a.der) == 0 {
		return fail(w, http.StatusNotFound, "no OCSP staple for this certificate")
	}
	maxAge := time.Duration(rd.ttl) * time.Second
	if !a.expires.IsZero() {
		maxAge = max(time.Until(a.expires), 0)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/ocsp-response")
	hdr.Set("ETag", a.etag)
	if a.lastModified != "" {
		hdr.Set("Last-Modified", a.lastModified)
	}
	if !a.expires.IsZero() {
		hdr.Set("Expires", a.expires.UTC().Format(http.TimeFormat))
	}
	hdr.Set("Cache-Control", "max-age="+strconv.Itoa(int(maxAge/time.Second))+", public, no-transform, must-revalidate")
	if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified
	}
	_, _ = w.Write(a.der)
	return http.StatusOK
}
