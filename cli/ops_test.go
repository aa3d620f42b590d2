package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/alert"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// webhook records the alerts POSTed to it.
type webhook struct {
	url    string
	mu     sync.Mutex
	alerts []alert.Alert
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	w := &webhook{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var a alert.Alert
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &a) != nil {
			t.Errorf("webhook got %s %s %q", r.Method, r.Header.Get("Content-Type"), body)
		}
		w.mu.Lock()
		w.alerts = append(w.alerts, a)
		w.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

func (w *webhook) received() []alert.Alert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]alert.Alert(nil), w.alerts...)
}

// getStatusJSON fetches /status.json.
func getStatusJSON(t *testing.T, base string) []certStatus {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []certStatus
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("/status.json: %v", err)
	}
	return list
}

// TestFailingRenewalOps: a renewal that fails (the CA is down, through a
// FaultProxy) shows on the status page, loaded in headless Chromium with
// JavaScript disabled, as a failing certificate with its error text;
// /status.json equals "certkeeper status --json"; the alert webhook gets
// exactly one POST for it, also across a restart of the proxy.
func TestFailingRenewalOps(t *testing.T) {
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{
		// Long enough that the failing state is read, in the browser too,
		// well before the last tenth of the lifetime ("expiring") even on
		// a loaded machine, where 40 s and then 60 s certificates left too
		// little room (the failed renewal's retries against the down CA
		// took 22 s, leaving 8 s of a 60 s certificate, 2 before its last
		// tenth).
		"default": {Description: "90 seconds", ValidityPeriod: 90 * time.Second},
	}})
	fp := testca.NewFaultProxy(t, ca)
	// Without ARI the renewal is due halfway through the lifetime (Pebble's
	// window comes later), leaving time to see it fail before it expires.
	fp.ServiceUnavailable("renewal-info", 1000, 0)
	roots := writeRoots(t, ca)
	back := newBackend(t, "hello")
	hook := newWebhook(t)
	storageDir := t.TempDir()
	statusBase := "http://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	args := []string{"--tls-addr", "127.0.0.1:" + strconv.Itoa(ca.TLSPort()), "--backend", back.url,
		"--allow", "a.test", "--ca", fp.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--profile", "default",
		"--storage", storageDir, "--status-addr", strings.TrimPrefix(statusBase, "http://"),
		"--alert-webhook", hook.url, "--alert-failing-for", "1ms", "--alert-expiring-within", "1s",
		"--alert-check-every", "300ms", "--log-level", "info"}
	cmd := startProxy(t, args...)
	if body, _ := curl(t, roots, "a.test", ca.TLSPort()); body != "hello" {
		t.Fatalf("body through the proxy = %q", body)
	}
	if got := getStatusJSON(t, statusBase); len(got) != 1 || got[0].State != "fine" {
		t.Fatalf("status after issuance: %+v, want one fine certificate", got)
	}
	fp.Down()

	// The renewal is due about halfway through the 90 s lifetime, and
	// fails after its retries.
	deadline := time.Now().Add(75 * time.Second)
	var failing certStatus
	for time.Now().Before(deadline) {
		if got := getStatusJSON(t, statusBase); len(got) == 1 && got[0].State == "failing" {
			failing = got[0]
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if failing.State != "failing" || failing.LastError == "" {
		t.Fatalf("no failing renewal shown within 75 s: %+v", failing)
	}

	// /status.json and the CLI read the same storage through one function;
	// the page adds the last-seen times the serving process holds, which
	// storage gets every few minutes (statuspage.Handler.LastSeen).
	noSeen := func(list []certStatus) []certStatus {
		for i := range list {
			list[i].LastSeen = time.Time{}
		}
		return list
	}
	var same bool
	var fromPage, fromCLI []certStatus
	for range 3 {
		fromPage = getStatusJSON(t, statusBase)
		r := ck(t, 30*time.Second, "status", "--json", "--storage", storageDir)
		if err := json.Unmarshal([]byte(r.stdout), &fromCLI); err != nil {
			t.Fatalf("status --json: %v\n%s", err, r.stdout)
		}
		if same = reflect.DeepEqual(noSeen(fromPage), noSeen(fromCLI)); same {
			break
		}
	}
	if !same {
		t.Errorf("/status.json = %+v\ncertkeeper status --json = %+v", fromPage, fromCLI)
	}

	start := time.Now()
	checkStatusPageInBrowser(t, statusBase, "a.test", failing.LastError)
	t.Logf("the status page in chromium: %v", time.Since(start).Round(time.Millisecond))

	// One alert, however many attempts fail.
	deadline = time.Now().Add(10 * time.Second)
	for len(hook.received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	got := hook.received()
	if len(got) != 1 {
		t.Fatalf("webhook got %d alerts, want 1: %+v", len(got), got)
	}
	if a := got[0]; a.Reason != alert.RenewalFailing || !reflect.DeepEqual(a.Names, []string{"a.test"}) || a.LastError == "" {
		t.Errorf("alert = %+v, want renewal_failing for a.test with the error", a)
	}
	// A restart remembers the alert it sent.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	startProxy(t, args...)
	time.Sleep(2 * time.Second) // several alert checks
	if n := len(hook.received()); n != 1 {
		t.Errorf("after a restart the webhook has %d alerts, want still 1", n)
	}
	// The CA is back: the renewal works, and one resolved alert ends the
	// failing one, so that a receiver that pages can clear it.
	fp.Up(t)
	deadline = time.Now().Add(60 * time.Second)
	for len(hook.received()) < 2 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // several checks: still one resolved alert
	got = hook.received()
	if len(got) != 2 || got[1].Reason != alert.Resolved || got[1].Resolves != alert.RenewalFailing || got[1].State != "fine" {
		t.Errorf("after the CA came back the webhook has %+v, want the failing alert and one resolved alert", got)
	}
}

// checkStatusPageInBrowser loads the status page in headless Chromium with
// JavaScript disabled and checks that name's row is in the failing state,
// coloured as such, with errText shown in full.
func checkStatusPageInBrowser(t *testing.T, base, name, errText string) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testsvc.Unavailable(t, "chromium", "install it: apt-get install chromium chromium-driver", err)
		return
	}
	actx, cancel := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Env("HOME="+t.TempDir()))
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	disableJS := func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(ctx, disableJS, chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("loading the status page in chromium: %v", err)
	}
	row := fmt.Sprintf(`tr.cert[data-name=%q]`, name)
	node := func(ctx context.Context, tg *chromedp.Target, sel string) (cdp.NodeID, error) {
		nodes, err := chromedp.Nodes(chromedp.CSS(sel))(ctx, tg)
		if err != nil {
			return 0, err
		}
		return nodes[0].NodeID, nil
	}
	// Only DOM and CSS protocol commands: no JavaScript runs in the page.
	html := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (string, error) {
			id, err := node(ctx, tg, sel)
			if err != nil {
				return "", err
			}
			h, err := cdp.Call(ctx, tg, dom.GetOuterHTML, dom.GetOuterHTMLParams{NodeID: id})
			return h.OuterHTML, err
		})
		if err != nil {
			t.Fatalf("status page in chromium: %v", err)
		}
		return v
	}
	background := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (string, error) {
			id, err := node(ctx, tg, sel)
			if err != nil {
				return "", err
			}
			if _, err := cdp.Call(ctx, tg, css.Enable, cdp.Empty{}); err != nil {
				return "", err
			}
			st, err := cdp.Call(ctx, tg, css.GetComputedStyleForNode, css.GetComputedStyleForNodeParams{NodeID: id})
			if err != nil {
				return "", err
			}
			for _, p := range st.ComputedStyle {
				if p.Name == "background-color" {
					return p.Value, nil
				}
			}
			return "", nil
		})
		if err != nil {
			t.Fatalf("computed style in chromium: %v", err)
		}
		return v
	}
	if h := html(row); !strings.Contains(h, `data-state="failing"`) {
		t.Errorf("the row of %s is not in the failing state:\n%s", name, h)
	}
	if h := html("pre.last-error"); !strings.Contains(h, htmlEscape(errText)) {
		t.Errorf("the page does not show the error in full:\nwant %q\nin %s", errText, h)
	}
	if h := html("head"); !strings.Contains(h, `http-equiv="refresh"`) || strings.Contains(h, "<script") {
		t.Errorf("the page's head has no meta refresh, or a script:\n%s", h)
	}
	bg := background(row + " .badge")
	if bg != "rgb(188, 76, 0)" {
		t.Errorf("the failing badge's background is %q, want the failing colour rgb(188, 76, 0)", bg)
	}
}

// htmlEscape is how the DOM serialises s as text (outerHTML): &, < and >
// escaped, quotes kept.
func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// TestStatusAddrNeedsToken: a status page beyond loopback without a token
// is refused at start.
func TestStatusAddrNeedsToken(t *testing.T) {
	r := ck(t, 30*time.Second, "proxy", "--tls-addr", "127.0.0.1:0", "--storage", t.TempDir(),
		"--status-addr", "0.0.0.0:"+strconv.Itoa(testsvc.FreePort(t)))
	if r.code != 2 || !strings.Contains(r.stderr, "--status-token") {
		t.Errorf("proxy --status-addr 0.0.0.0:PORT without a token: exit %d\n%s", r.code, r.stderr)
	}
}
