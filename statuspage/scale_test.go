package statuspage_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/statusfill"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/statuspage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// scaleN is how many certificates the scale tests store: a thousand in
// CI, CERTKEEPER_STATUS_SCALE (e.g. 100000) to measure.
func scaleN(t *testing.T) int {
	if s := os.Getenv("CERTKEEPER_STATUS_SCALE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("CERTKEEPER_STATUS_SCALE=%q: %v", s, err)
		}
		return n
	}
	return 1000
}

// TestPageScale: with thousands of certificates (100,000 when measured),
// the page lists the failing ones first and pages the rest, 100 a page;
// ?state= filters; /status.json streams every entry (issue 16).
func TestPageScale(t *testing.T) {
	n := scaleN(t)
	dir := t.TempDir()
	failing := []int{n - 1, n / 2}
	if err := statusfill.Fill(dir, n, failing, "CA down"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&statuspage.Handler{Storage: filestore.New(dir)})
	t.Cleanup(srv.Close)
	get := func(path string) string {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %v", path, resp.Status, err)
		}
		return string(body)
	}
	rows := func(page string) []string {
		var names []string
		for _, part := range strings.Split(page, `<tr class="cert state-`)[1:] {
			_, after, _ := strings.Cut(part, `data-name="`)
			name, _, _ := strings.Cut(after, `"`)
			names = append(names, name)
		}
		return names
	}
	start := time.Now()
	first := get("/")
	t.Logf("page 1 over %d certificates: %v", n, time.Since(start).Round(time.Millisecond))
	got := rows(first)
	if len(got) != statuspage.DefaultPageSize {
		t.Fatalf("page 1 lists %d certificates, want %d", len(got), statuspage.DefaultPageSize)
	}
	// Failing first, in key order.
	if want := []string{statusfill.Name(n / 2), statusfill.Name(n - 1)}; got[0] != want[0] || got[1] != want[1] {
		t.Errorf("page 1 starts with %v, want the failing %v", got[:2], want)
	}
	pages := (n + statuspage.DefaultPageSize - 1) / statuspage.DefaultPageSize
	if want := "Page 1 of " + strconv.Itoa(pages); !strings.Contains(first, want) || !strings.Contains(first, `rel="next" href="?page=2"`) {
		t.Errorf("page 1 has no %q with a link to page 2", want)
	}
	if got := rows(get("/?page=2")); len(got) != statuspage.DefaultPageSize || got[0] != statusfill.Name(statuspage.DefaultPageSize-2) {
		t.Errorf("page 2 lists %d, starting with %v; want %d starting with %s", len(got), got[:1], statuspage.DefaultPageSize,
			statusfill.Name(statuspage.DefaultPageSize-2))
	}
	if got := rows(get("/?state=failing")); len(got) != 2 {
		t.Errorf("?state=failing lists %v, want the 2 failing names", got)
	}
	var list []status.Cert
	if err := json.Unmarshal([]byte(get("/status.json")), &list); err != nil || len(list) != n {
		t.Errorf("/status.json: %d entries (%v), want %d", len(list), err, n)
	}
}
