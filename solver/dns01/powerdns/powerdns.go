// Package powerdns is a DNS provider for the PowerDNS Authoritative
// Server's HTTP API (api=yes): it changes records with PATCH requests on
// /api/v1/servers/SERVER/zones/ZONE.
//
// PowerDNS replaces a whole RRset (every value of one name and type) at
// once, so AppendRecords reads the RRset, adds the new values and writes
// the union back, and DeleteRecords writes back what is left (or deletes
// the RRset when nothing is). An RRset that exists keeps its TTL; only a
// new one gets the records' TTL. A mutex serialises these read-modify-write
// cycles within one Provider: a wildcard and its apex, whose two values
// share one name, are set concurrently without losing either. Two
// processes changing the same RRset at the same moment can still lose a
// value; give each its own zone or CNAME the challenge names apart.
//
// It implements the libdns RecordAppender and RecordDeleter contract, so
// it plugs into dns01.Solver like any libdns provider. The API key is sent
// only in the X-API-Key header: it is never logged and never part of an
// error, and Provider's String and LogValue leave it out.
package powerdns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
)

// Provider changes records through one PowerDNS server's API. APIURL and
// APIKey are required; it is safe for concurrent use. Set the fields
// before first use.
type Provider struct {
	// APIURL is the API's base URL, e.g. "http://127.0.0.1:8081" (a
	// trailing /api/v1 is accepted).
	APIURL string
	// APIKey is the api-key of pdns.conf, sent as X-API-Key.
	APIKey string
	// ServerID is the server in the API path. Empty means "localhost",
	// the only one an authoritative server has.
	ServerID string
	// HTTPClient sends the requests. Nil means a client with a 30 s
	// timeout.
	HTTPClient *http.Client

	mu sync.Mutex // serialises read-modify-write of RRsets
}

// String describes the provider without its key.
func (p *Provider) String() string { return "powerdns API " + p.base() }

// LogValue keeps the key out of logs.
func (p *Provider) LogValue() slog.Value {
	return slog.GroupValue(slog.String("api_url", p.base()), slog.String("api_key", "REDACTED"))
}

func (p *Provider) base() string {
	return strings.TrimSuffix(strings.TrimSuffix(p.APIURL, "/"), "/api/v1")
}

func (p *Provider) client() *http.Client {
	if p.HTTPClient != nil {
		return p.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (p *Provider) zoneURL(zone string) string {
	return p.base() + "/api/v1/servers/" + url.PathEscape(p.serverID()) + "/zones/" + url.PathEscape(fqdn(zone))
}

// ErrNoAPIServer is wrapped by the error of a request the API answered
// with 404 for the server too: APIURL (or ServerID) is wrong, not the
// zone.
var ErrNoAPIServer = errors.New("no PowerDNS API server at this URL")

// ErrUnreachable is wrapped by the error of a request that got no HTTP
// answer: nothing listens at APIURL, or what does is not an HTTP server.
var ErrUnreachable = errors.New("no HTTP answer")

// serverFound reports whether the API answers for the server: a 404 for
// a zone is then the zone's, not the URL's.
func (p *Provider) serverFound(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base()+"/api/v1/servers/"+url.PathEscape(p.serverID()), nil)
	if err != nil {
		return false
	}
	req.Header.Set("X-API-Key", p.APIKey)
	resp, err := p.client().Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

func (p *Provider) serverID() string {
	if p.ServerID == "" {
		return "localhost"
	}
	return p.ServerID
}

// rrset is one RRset as the API reads and writes it.
type rrset struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	TTL        int      `json:"ttl,omitempty"`
	ChangeType string   `json:"changetype,omitempty"`
	Records    []record `json:"records"`
}

type record struct {
	Content  string `json:"content"`
	Disabled bool   `json:"disabled"`
}

// key names an RRset.
type key struct{ name, typ string }

// AppendRecords adds recs to zone, keeping the values already there.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return recs, p.change(ctx, zone, recs, true)
}

// DeleteRecords removes exactly recs (name, type and value) from zone; a
// value that is not there is no error.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return recs, p.change(ctx, zone, recs, false)
}

// change reads the zone's RRsets named in recs, adds (add) or removes the
// values of recs, and writes every changed RRset back in one PATCH.
func (p *Provider) change(ctx context.Context, zone string, recs []libdns.Record, add bool) error {
	if p.APIURL == "" || p.APIKey == "" {
		return errors.New("powerdns: APIURL and APIKey are required")
	}
	want := map[key][]string{}
	ttls := map[key]int{}
	var order []key
	for _, r := range recs {
		rr := r.RR()
		k := key{strings.ToLower(libdns.AbsoluteName(rr.Name, fqdn(zone))), strings.ToUpper(rr.Type)}
		k.name = fqdn(k.name)
		if _, ok := want[k]; !ok {
			order = append(order, k)
		}
		content := rr.Data
		if k.typ == "TXT" {
			content = quoteTXT(rr.Data)
		}
		want[k] = append(want[k], content)
		ttls[k] = max(int(rr.TTL/time.Second), 1)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	have, err := p.rrsets(ctx, zone)
	if err != nil {
		return err
	}
	var patch []rrset
	for _, k := range order {
		cur := have[k]
		next := slices.Clone(cur.Records)
		for _, v := range want[k] {
			i := slices.IndexFunc(next, func(r record) bool { return sameContent(k.typ, r.Content, v) })
			switch {
			case add && i < 0:
				next = append(next, record{Content: v})
			case !add && i >= 0:
				next = slices.Delete(next, i, i+1)
			}
		}
		// An RRset already there keeps its TTL, whether we add to it or
		// remove from it: an operator's record must not come out of a
		// challenge with the challenge's TTL. Only a new RRset gets ours.
		ttl := cur.TTL
		if len(cur.Records) == 0 || ttl == 0 {
			ttl = ttls[k]
		}
		switch {
		case len(next) == len(cur.Records) && !add:
			continue // nothing of ours there
		case len(next) == 0:
			patch = append(patch, rrset{Name: k.name, Type: k.typ, ChangeType: "DELETE", Records: []record{}})
		default:
			patch = append(patch, rrset{Name: k.name, Type: k.typ, TTL: ttl, ChangeType: "REPLACE", Records: next})
		}
	}
	if len(patch) == 0 {
		return nil
	}
	_, err = p.do(ctx, http.MethodPatch, zone, map[string]any{"rrsets": patch})
	return err
}

// CheckAccess implements dns01.AccessChecker: it reads zone through the
// API, which checks the API key, the server ID and that the server has the
// zone, as a change would; nothing changes. PowerDNS grants an API key
// every zone of the server, so the record's name needs no check.
func (p *Provider) CheckAccess(ctx context.Context, zone, _ string) error {
	_, err := p.do(ctx, http.MethodGet, zone, nil)
	return err
}

// rrsets reads zone's RRsets.
func (p *Provider) rrsets(ctx context.Context, zone string) (map[key]rrset, error) {
	body, err := p.do(ctx, http.MethodGet, zone, nil)
	if err != nil {
		return nil, err
	}
	var z struct {
		RRsets []rrset `json:"rrsets"`
	}
	if err := json.Unmarshal(body, &z); err != nil {
		return nil, fmt.Errorf("reading zone %s from the PowerDNS API at %s: %w", fqdn(zone), p.base(), err)
	}
	out := make(map[key]rrset, len(z.RRsets))
	for _, s := range z.RRsets {
		out[key{strings.ToLower(fqdn(s.Name)), strings.ToUpper(s.Type)}] = s
	}
	return out, nil
}

// do sends one request about zone with the API key; the key never enters
// an error.
func (p *Provider) do(ctx context.Context, method, zone string, body any) ([]byte, error) {
	what := fmt.Sprintf("%s zone %s at the PowerDNS API %s", strings.ToLower(method), fqdn(zone), p.base())
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.zoneURL(zone), rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("X-API-Key", p.APIKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		// No HTTP answer at all: connection refused, or something that is
		// not an HTTP server (the DNS port) closing the connection (EOF).
		return nil, fmt.Errorf("%s: %w (is APIURL the API's base URL: webserver-address and "+
			"webserver-port in pdns.conf, with api=yes and webserver=yes, not the DNS port?): %w", what, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", what, err)
	}
	if resp.StatusCode/100 == 2 {
		return out, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(out))
	if json.Unmarshal(out, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	msg = strings.ReplaceAll(msg, p.APIKey, "REDACTED")
	hint, noServer := "", false
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint = " (wrong API key? it must equal api-key in pdns.conf)"
	case http.StatusNotFound:
		hint = fmt.Sprintf(" (no API server %s there: is APIURL the API's base URL, e.g. http://127.0.0.1:8081, "+
			"to which certkeeper adds /api/v1/servers/%s/zones/ZONE, and ServerID right?)", p.serverID(), p.serverID())
		if p.serverFound(ctx) {
			hint = fmt.Sprintf(" (the API has server %s but not the zone: is the zone on this server?)", p.serverID())
		} else {
			noServer = true
		}
	case http.StatusUnprocessableEntity:
		hint = " (PowerDNS refused the change)"
	}
	if noServer {
		return nil, fmt.Errorf("%s: %s%s: %s: %w", what, resp.Status, hint, msg, ErrNoAPIServer)
	}
	return nil, fmt.Errorf("%s: %s%s: %s", what, resp.Status, hint, msg)
}

func fqdn(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// quoteTXT returns s as one zone-file character string per 255 bytes,
// quoted and escaped as PowerDNS expects TXT content.
func quoteTXT(s string) string {
	var parts []string
	for {
		n := min(len(s), 255)
		var b strings.Builder
		b.WriteByte('"')
		for i := 0; i < n; i++ {
			c := s[i]
			switch {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20 || c > 0x7e:
				b.WriteString(fmt.Sprintf("\\%03d", c))
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
		parts = append(parts, b.String())
		s = s[n:]
		if s == "" {
			return strings.Join(parts, " ")
		}
	}
}

// unquoteTXT joins the character strings of TXT content.
func unquoteTXT(s string) string {
	var b strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			in = !in
		case !in:
			// whitespace between strings
		case c == '\\' && i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]):
			n, _ := strconv.Atoi(s[i+1 : i+4])
			b.WriteByte(byte(n))
			i += 3
		case c == '\\' && i+1 < len(s):
			b.WriteByte(s[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// sameContent reports whether two contents are one value.
func sameContent(typ, a, b string) bool {
	if typ == "TXT" {
		return unquoteTXT(a) == unquoteTXT(b)
	}
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}
