// Package statuspage serves certkeeper's status page: every certificate
// with its names, issuer, expiry, state (in a colour), the last renewal
// error in full and the recent events, as HTML that needs no JavaScript
// and no external asset and refreshes itself, and as /status.json.
//
// The page reads the same storage, through the same function
// (status.Walk), as "certkeeper status", so the two always agree. It does not act on
// certificates; it only shows them.
//
// Reading the storage is the cost of a request: at 100,000 certificates
// a read took 6 s (filestore) to 10 s (Redis) and ~8 s of CPU, and the
// page reloads itself every 30 s. So requests that come while a read is
// under way share it, and a read that took 200 ms or more is reused for
// max(10 s, 5 × its duration): at 100,000 certificates one read serves
// 30 s of views, reloads and /status.json polls, and the page then says
// how old it is. A smaller store is read anew for each request. A
// certificate obtained, renewed, revoked or failing in the serving
// process (an event its Recorder records) ends the reuse early, once the
// read is as old as it took. One list of the stored certificates is held
// at a time. A request whose client goes away stops waiting for the read
// (which goes on for the others) and is logged at debug level only.
package statuspage

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
)

//go:embed page.html
var pageHTML string

//go:embed style.css
var styleCSS string

// whenLayout is how the page shows a time.
const whenLayout = "2006-01-02 15:04:05 UTC"

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"join": strings.Join,
	"retry": func(c status.Cert, now time.Time) string {
		return c.RetryNote(now, func(t time.Time) string { return t.UTC().Format(whenLayout) })
	},
	"pagelink": pageLink,
	"count":    count,
	"first": func(names []string) string {
		if len(names) == 0 {
			return ""
		}
		return names[0]
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format(whenLayout)
	},
	"left": func(t time.Time, now time.Time) string {
		d := t.Sub(now).Round(time.Second)
		switch {
		case d < 0:
			return "expired " + (-d).String() + " ago"
		case d > 48*time.Hour:
			return fmt.Sprintf("in %d days", int(d.Hours()/24))
		}
		return "in " + d.String()
	},
}).Parse(pageHTML))

// Handler serves the status page at "/" and the same data at
// "/status.json". A Handler must not be copied after first use, nor its
// fields changed.
type Handler struct {
	// Storage is where the certificates are read from. Requests that
	// come while a read is under way share it, and a read that took
	// 200 ms or more is reused for max(10 s, 5 × its duration): at
	// 100,000 certificates (6 s) one read serves 30 s of requests.
	Storage storage.Storage

	// Events, if set, supplies the recent events the page lists. A
	// certificate obtained, renewed, revoked or failing in this process
	// (an event it records) also ends the reuse of a read early, once
	// the read is as old as it took.
	Events *Recorder

	// Allowed, if set, is asked about the primary name of every stored
	// on-demand certificate on each request (give the serving Manager's
	// Policy.Decide): a name it refuses is marked as no longer allowed,
	// with its error. A policy that asks a URL is asked once per
	// certificate per request.
	Allowed func(ctx context.Context, name string) error

	// LastSeen, if set, gives the time a handshake last asked for a
	// primary name as the serving process holds it (Manager.LastSeen),
	// which the page shows when it is newer than the one in storage: a
	// Manager writes those every few minutes, so a name first asked for a
	// minute ago would show none.
	LastSeen func(name string) time.Time

	// CertFiles, if set, lists the certificates the serving process has
	// from files rather than storage (give the serving Manager's
	// StatusOfCertFiles): the page and /status.json list them after the
	// stored ones, as "certkeeper status --cert-file" does.
	CertFiles func(now time.Time) []status.Cert

	// Warnings, if set, gives the serving process's own problems that
	// the page shows above the certificates (a reload of the
	// configuration that failed, so that the one before still runs).
	Warnings func(ctx context.Context) []string

	// Token, if set, must be given as "Authorization: Bearer TOKEN" or as
	// ?token=TOKEN (which the page's links and refresh keep). Set it
	// whenever the page is reachable from beyond loopback.
	Token string

	// PageSize is how many certificates one page lists (expired,
	// expiring, revoked, failing and damaged first; ?page=N for the others,
	// ?state=S for one state). Zero means DefaultPageSize.
	PageSize int

	// Refresh is how often the page reloads itself. Zero means 30 s.
	Refresh time.Duration

	// Logger receives errors reading storage. Nil means slog.Default().
	Logger *slog.Logger

	reads reads // the storage's last read, shared and reused
}

// pageData is what the template sees.
type pageData struct {
	Now          time.Time
	Refresh      int
	Certificates []status.Cert // this page's, worst first
	Total        int           // all entries
	FirstIssues  int           // of Total, names with no certificate yet
	Stored       int           // of Total, the others: certificates (and damaged records)
	Matching     int           // those the state filter keeps
	Page, Pages  int
	State        string // the filter
	Prev, Next   string // links to the neighbouring pages, if any
	Events       []Event
	Counts       map[string]int
	Token        string
	CSS          template.CSS
	Err          string
	Warnings     []string // Handler.Warnings
	// Age and Reuse, set when the page is served from a read made for
	// earlier requests, say how old that read is and how long it is
	// reused.
	Age, Reuse string
}

// ServeHTTP serves "/", "/status.json" and nothing else.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="certkeeper status"`)
		http.Error(w, "unauthorized: give the status token as ?token=TOKEN or Authorization: Bearer TOKEN", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch r.URL.Path {
	case "/status.json":
		h.serveJSON(w, r)
	case "/":
		h.servePage(w, r)
	default:
		http.NotFound(w, r)
	}
}

// servePage serves page ?page= of the certificates in ?state=, from a
// shared read of the storage (Handler.snapshot).
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	snap, reused, err := h.snapshot(ctx)
	if err != nil && ctx.Err() != nil {
		h.logger().Debug("reading certificate status", slog.Any("err", err)) // the client went away: nobody to tell
		return
	}
	now := time.Now()
	var stored []status.Cert
	if snap != nil {
		now, stored = snap.at, snap.certs // the states are as of the read
	}
	n, state := pageParams(r.URL.Query())
	p := pageFrom(stored, h.certFiles(now), state, n, h.pageSize(), err)
	h.annotate(ctx, p.Certificates)
	d := pageData{Now: now, Refresh: int(h.refresh().Seconds()), Certificates: p.Certificates, Events: h.Events.Recent(),
		Counts: p.Counts, CSS: template.CSS(styleCSS), Total: p.Total, FirstIssues: p.FirstIssues, Stored: p.Total - p.FirstIssues, Matching: p.Matching, Page: p.Page, Pages: p.Pages,
		State: p.State}
	if h.Warnings != nil {
		d.Warnings = h.Warnings(ctx)
	}
	if reused {
		d.Age = time.Since(snap.done).Round(time.Second).String()
		d.Reuse = reuseFor(snap.took).Round(time.Second).String()
	}
	if h.Token != "" {
		d.Token = r.URL.Query().Get("token")
	}
	if p.Page > 1 {
		d.Prev = pageLink(d.Token, p.State, p.Page-1)
	}
	if p.Page < p.Pages {
		d.Next = pageLink(d.Token, p.State, p.Page+1)
	}
	if err != nil {
		h.logger().Error("reading certificate status", slog.Any("err", err))
		d.Err = err.Error()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if err := page.Execute(w, d); err != nil {
		if ctx.Err() != nil {
			h.logger().Debug("writing the status page", slog.Any("err", err)) // the client went away
			return
		}
		h.logger().Warn("writing the status page", slog.Any("err", err))
	}
}

// count writes n with its thousands grouped: 100,000.
func count(n int) string {
	if n < 0 {
		return "-" + count(-n)
	}
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// annotate adds to certs what the serving process knows and storage does
// not (yet): the last-seen times it holds, and NotAllowed for the
// certificates whose primary name h.Allowed refuses.
func (h *Handler) annotate(ctx context.Context, certs []status.Cert) {
	if h.LastSeen != nil {
		for i := range certs {
			if c := &certs[i]; len(c.Names) > 0 {
				if t := h.LastSeen(c.Names[0]); t.After(c.LastSeen) {
					c.LastSeen = t.UTC()
				}
			}
		}
	}
	if h.Allowed == nil {
		return
	}
	for i := range certs {
		c := &certs[i]
		if len(c.Names) == 0 || c.NotAfter.IsZero() || !c.OnDemand {
			continue // damaged, no certificate yet, or managed through Cert (which the policy does not govern)
		}
		if err := h.Allowed(ctx, c.Names[0]); err != nil {
			// Not renewed: no renewal time to show (it read "now" at every
			// look, a soak trial).
			c.NotAllowed, c.NextRenewal = err.Error(), time.Time{}
		}
	}
}

func (h *Handler) authorized(r *http.Request) bool {
	if h.Token == "" {
		return true
	}
	given := r.URL.Query().Get("token")
	if scheme, auth, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		given = auth // the scheme's case does not matter (RFC 9110, 11.1)
	}
	// Compared as hashes: ConstantTimeCompare returns at once when the
	// lengths differ, which would tell a guesser the token's length.
	got, want := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(h.Token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// serveJSON streams /status.json, every entry, from a shared read of the
// storage (Handler.snapshot), one record at a time.
func (h *Handler) serveJSON(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	snap, _, err := h.snapshot(ctx)
	if err != nil {
		if ctx.Err() != nil {
			h.logger().Debug("reading certificate status", slog.Any("err", err)) // the client went away
			return
		}
		h.logger().Error("reading certificate status", slog.Any("err", err))
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 32<<10)
	arr := status.ArrayWriter{W: bw}
	var batch [1]status.Cert
	write := func(c status.Cert) error {
		batch[0] = c // a copy: annotate must not modify the shared read
		h.annotate(ctx, batch[:])
		return arr.Write(batch[0])
	}
	for _, list := range [][]status.Cert{snap.certs, h.certFiles(snap.at)} {
		for _, c := range list {
			if err := write(c); err != nil {
				return // the client went away: the write error is its own
			}
		}
	}
	if err := arr.Close(); err == nil {
		_ = bw.Flush()
	}
}

// certFiles returns what CertFiles lists, if set.
func (h *Handler) certFiles(now time.Time) []status.Cert {
	if h.CertFiles == nil {
		return nil
	}
	return h.CertFiles(now)
}

func (h *Handler) pageSize() int {
	if h.PageSize > 0 {
		return h.PageSize
	}
	return DefaultPageSize
}

func (h *Handler) refresh() time.Duration {
	if h.Refresh > 0 {
		return h.Refresh
	}
	return 30 * time.Second
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}
