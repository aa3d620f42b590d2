// Package statuspage serves certkeeper's status page: every certificate
// with its names, issuer, expiry, state (in a colour), the last renewal
// error in full and the recent events, as HTML that needs no JavaScript
// and no external asset and refreshes itself, and as /status.json.
//
// The page reads the same storage, through the same function
// (status.Read), as "certkeeper status", so the two always agree. It does not act on
// certificates; it only shows them.
package statuspage

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
)

//go:embed page.html
var pageHTML string

//go:embed style.css
var styleCSS string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"join": strings.Join,
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
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
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
// "/status.json".
type Handler struct {
	// Storage is where the certificates are read from, on every request.
	Storage storage.Storage

	// Events, if set, supplies the recent events the page lists.
	Events *Recorder

	// Allowed, if set, is asked about the primary name of every stored
	// on-demand certificate on each request (give the serving Manager's
	// Policy.Decide): a name it refuses is marked as no longer allowed,
	// with its error. A policy that asks a URL is asked once per
	// certificate per request.
	Allowed func(ctx context.Context, name string) error

	// Token, if set, must be given as "Authorization: Bearer TOKEN" or as
	// ?token=TOKEN (which the page's links and refresh keep). Set it
	// whenever the page is reachable from beyond loopback.
	Token string

	// Refresh is how often the page reloads itself. Zero means 30 s.
	Refresh time.Duration

	// Logger receives errors reading storage. Nil means slog.Default().
	Logger *slog.Logger
}

// pageData is what the template sees.
type pageData struct {
	Now          time.Time
	Refresh      int
	Certificates []status.Cert
	Events       []Event
	Counts       map[string]int
	Token        string
	CSS          template.CSS
	Err          string
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
	now := time.Now()
	certs, err := status.Read(r.Context(), h.Storage, now)
	h.markNotAllowed(r.Context(), certs)
	switch r.URL.Path {
	case "/status.json":
		if err != nil {
			h.logger().Error("reading certificate status", slog.Any("err", err))
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(certs)
	case "/":
		d := pageData{Now: now, Refresh: int(h.refresh().Seconds()), Certificates: certs, Events: h.Events.Recent(),
			Counts: map[string]int{}, CSS: template.CSS(styleCSS)}
		if h.Token != "" {
			d.Token = r.URL.Query().Get("token")
		}
		if err != nil {
			h.logger().Error("reading certificate status", slog.Any("err", err))
			d.Err = err.Error()
		}
		for _, c := range certs {
			d.Counts[c.State]++
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if err := page.Execute(w, d); err != nil {
			h.logger().Warn("writing the status page", slog.Any("err", err))
		}
	default:
		http.NotFound(w, r)
	}
}

// markNotAllowed sets NotAllowed on the stored certificates whose primary
// name h.Allowed refuses.
func (h *Handler) markNotAllowed(ctx context.Context, certs []status.Cert) {
	if h.Allowed == nil {
		return
	}
	for i := range certs {
		c := &certs[i]
		if len(c.Names) == 0 || c.NotAfter.IsZero() || !c.OnDemand {
			continue // damaged, no certificate yet, or managed through Cert (which the policy does not govern)
		}
		if err := h.Allowed(ctx, c.Names[0]); err != nil {
			c.NotAllowed = err.Error()
		}
	}
}

func (h *Handler) authorized(r *http.Request) bool {
	if h.Token == "" {
		return true
	}
	given := r.URL.Query().Get("token")
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		given = auth
	}
	return subtle.ConstantTimeCompare([]byte(given), []byte(h.Token)) == 1
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
