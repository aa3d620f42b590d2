package statuspage_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/statuspage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// TestHandler: the page and /status.json list a certificate a Manager
// obtained and the events it recorded; a token, when set, is required.
func TestHandler(t *testing.T) {
	st := filestore.New(t.TempDir())
	var rec statuspage.Recorder
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, OnEvent: rec.Observe}
	t.Cleanup(func() { m.Close() })
	if err := m.Cert(t.Context(), "a.test"); err != nil {
		t.Fatal(err)
	}
	// A name whose first issuance fails is listed, but not counted as a
	// certificate.
	failing, _ := json.Marshal(map[string]status.Failure{status.FailingKey("never.test", ""): {Names: []string{"never.test"},
		Error: "rejectedIdentifier", At: time.Now().UTC(), FirstIssue: true}})
	if err := st.Store(t.Context(), status.FailuresKey, failing); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&statuspage.Handler{Storage: st, Events: &rec, Token: "s3cret", Refresh: 5 * time.Second})
	t.Cleanup(srv.Close)

	get := func(path, auth string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	for _, path := range []string{"/", "/status.json", "/?token=wrong"} {
		if resp, _ := get(path, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %s, want 401", path, resp.Status)
		}
	}
	resp, body := get("/?token=s3cret", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / with the token: %s", resp.Status)
	}
	for _, want := range []string{`data-name="a.test"`, `data-state="fine"`, `content="5"`, "status.json?token=s3cret", "obtained",
		`data-name="never.test"`, ">1 certificate and 1 name with none yet</a>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("the page has a script or an external reference:\n%s", body)
	}
	resp, body = get("/status.json", "s3cret")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /status.json: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var list []statuspage.Cert
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Names[0] != "a.test" || list[0].State != statuspage.StateFine || list[0].Issuer != "local" {
		t.Errorf("/status.json = %+v", list)
	}
	if resp, _ := get("/nothing", "s3cret"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing: %s, want 404", resp.Status)
	}
	// The scheme's case does not matter (RFC 9110, 11.1); another scheme
	// or a wrong token does not pass.
	for auth, want := range map[string]int{"bearer s3cret": 200, "BEARER s3cret": 200, "Basic s3cret": 401, "Bearer s3cre": 401, "Bearer s3cret!": 401} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/status.json", nil)
		req.Header.Set("Authorization", auth)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /status.json with Authorization %q: %s, want %d", auth, resp.Status, want)
		}
	}
}

// TestHandlerMarksNotAllowed: a stored on-demand certificate whose name
// the serving policy no longer allows is marked, with the policy's
// reason, on the page and in /status.json (issue 18).
func TestHandlerMarksNotAllowed(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, Policy: policy.Allowlist("gone.test")}
	t.Cleanup(func() { m.Close() })
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "gone.test"}); err != nil {
		t.Fatal(err)
	}
	now := policy.Allowlist("other.test") // the policy after a reload
	srv := httptest.NewServer(&statuspage.Handler{Storage: st, Allowed: now.Decide})
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var list []status.Cert
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list) != 1 || !strings.Contains(list[0].NotAllowed, "gone.test") {
		t.Fatalf("/status.json = %+v (%v), want gone.test marked as no longer allowed", list, err)
	}
	if !list[0].NextRenewal.IsZero() {
		t.Errorf("/status.json: next renewal %v for a certificate no longer renewed", list[0].NextRenewal)
	}
	resp, err = srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "no longer allowed") {
		t.Errorf("the page does not mark gone.test as no longer allowed:\n%s", page)
	}
}

// TestHandlerLastSeenFromMemory: a handshake a moment ago shows on the
// page and in /status.json of the serving process at once, from the
// Manager's memory, although storage gets last-seen times only every few
// minutes (trial 18: LAST SEEN stayed "-" for five minutes).
func TestHandlerLastSeenFromMemory(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, Policy: policy.Allowlist("seen.test")}
	t.Cleanup(func() { m.Close() })
	before := time.Now().Add(-time.Second)
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "seen.test"}); err != nil {
		t.Fatal(err)
	}
	read := func(h *statuspage.Handler) time.Time {
		t.Helper()
		srv := httptest.NewServer(h)
		defer srv.Close()
		resp, err := srv.Client().Get(srv.URL + "/status.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list []status.Cert
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list) != 1 {
			t.Fatalf("/status.json = %+v (%v)", list, err)
		}
		return list[0].LastSeen
	}
	if seen := read(&statuspage.Handler{Storage: st}); !seen.IsZero() {
		t.Fatalf("storage already has a last-seen time (%v): the test shows nothing", seen)
	}
	if seen := read(&statuspage.Handler{Storage: st, LastSeen: m.LastSeen}); seen.Before(before.Truncate(time.Second)) {
		t.Errorf("last seen from the Manager = %v, want the handshake's time (after %v)", seen, before)
	}
	if !m.LastSeen("other.test").IsZero() {
		t.Error("LastSeen of a name not held is not zero")
	}
}

// TestHandlerStorageDown: with its storage unreadable (Redis stopped) the
// page says the certificates are unknown, not "0 certificates" and "No
// certificates yet", which read as all gone while the node serves them
// from memory (trial 11). Real Redis.
func TestHandlerStorageDown(t *testing.T) {
	rs := testsvc.Redis(t)
	st, err := redisstore.Open("redis://" + rs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rs.Stop()
	rec := httptest.NewRecorder()
	(&statuspage.Handler{Storage: st}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	if !strings.Contains(body, "Reading the certificates failed") || !strings.Contains(body, "certificates unknown") ||
		strings.Contains(body, "0 certificates") || strings.Contains(body, "No certificates yet") {
		t.Errorf("the page with its storage down:\n%s", body)
	}
}
