package certserver

import (
	"net/http"
	"strings"

	"github.com/certkeeper/certkeeper/hostname"
)

// The kinds of request the API answers.
const (
	kindNone = iota
	kindHealth
	kindChallenge
	kindCertificate
	kindOCSP
	kindMetrics
)

const (
	certificatesPrefix = "/v1/certificates/"
	ocspPrefix         = "/v1/ocsp/"
	challengePrefix    = "/.well-known/acme-challenge/"
)

// request is a parsed API request; status is non-zero (with msg) when it
// must be refused before any work.
type request struct {
	kind   int
	name   string // normalised
	pem    bool   // ?format=pem
	status int
	msg    string
}

// parseRequest routes a request by its method, decoded path and raw query.
// uriLen is the length of the request line's target, bounded by maxPath
// before anything else looks at it. Names are normalised (lower case,
// punycode, no trailing dot) and validated here: an invalid one never
// reaches the Manager.
func parseRequest(method, path, rawQuery string, uriLen, maxPath int) request {
	if uriLen > maxPath || len(path)+len(rawQuery) > maxPath {
		return request{status: http.StatusRequestURITooLong}
	}
	if path == "/healthz" {
		return methodOK(method, request{kind: kindHealth})
	}
	if strings.HasPrefix(path, challengePrefix) {
		return request{kind: kindChallenge}
	}
	if path == "/metrics" {
		return methodOK(method, request{kind: kindMetrics})
	}
	var req request
	var raw string
	switch {
	case strings.HasPrefix(path, certificatesPrefix):
		req.kind, raw = kindCertificate, path[len(certificatesPrefix):]
	case strings.HasPrefix(path, ocspPrefix):
		req.kind, raw = kindOCSP, path[len(ocspPrefix):]
	default:
		return request{status: http.StatusNotFound}
	}
	if req = methodOK(method, req); req.status != 0 {
		return req
	}
	if raw == "" || strings.Contains(raw, "/") {
		return request{status: http.StatusBadRequest, msg: "want /v1/certificates/NAME or /v1/ocsp/NAME"}
	}
	name, err := hostname.Normalizer{AllowIP: true}.Normalize(raw) // an IP address too, as CertificateFor takes it
	if err != nil {
		return request{status: http.StatusBadRequest, msg: err.Error()}
	}
	req.name = name
	if rawQuery != "" {
		format, ok := formatOf(rawQuery)
		switch {
		case !ok:
			return request{status: http.StatusBadRequest, msg: "unknown query parameter; the API takes only format=json or format=pem"}
		case format == "pem" && req.kind == kindCertificate:
			req.pem = true
		case format == "json" && req.kind == kindCertificate:
		default:
			return request{status: http.StatusBadRequest, msg: "format: use json or pem"}
		}
	}
	return req
}

// formatOf returns the value of the query's only parameter, format.
func formatOf(rawQuery string) (string, bool) {
	v, ok := strings.CutPrefix(rawQuery, "format=")
	if !ok || strings.ContainsAny(v, "&;=%+") {
		return "", false
	}
	return v, true
}

func methodOK(method string, req request) request {
	if method != http.MethodGet && method != http.MethodHead {
		return request{status: http.StatusMethodNotAllowed, msg: "use GET"}
	}
	return req
}
