package statuspage

import (
	"net/url"
	"strconv"

	"github.com/certkeeper/certkeeper/status"
)

// DefaultPageSize is how many certificates a page of the status page
// lists when Handler.PageSize is zero.
const DefaultPageSize = 100

// rank orders the page: what needs an operator first (expired, expiring,
// revoked, failing, damaged), then what is due, then the rest.
func rank(state string) int {
	switch state {
	case status.Expired:
		return 0
	case status.Expiring:
		return 1
	case status.Revoked:
		return 2
	case status.Failing:
		return 3
	case status.Damaged:
		return 4
	case status.Renewing:
		return 5
	}
	return 6
}

const ranks = 7

// maxPage is the deepest page served: page N holds up to N×size entries
// while they are ranked, so the depth bounds the memory a request can
// make the process hold beside the shared read. Use ?state= (or /status.json) beyond it.
const maxPage = 1000

// pageOf is one page of the status page.
type pageOf struct {
	Certificates []status.Cert
	Total        int            // certificates stored, and names failing a first issuance
	FirstIssues  int            // of Total, the names with no certificate yet
	Matching     int            // those the state filter keeps
	Counts       map[string]int // by state, over all
	Page, Pages  int            // 1-based
	State        string         // the filter, "" for all
}

// pageFrom picks page (1-based) of size entries, worst first, from stored
// (a snapshot's, which it does not modify) and then files (the
// certificate files served), holding at most page×size entries per rank.
// With err (the storage could not be read) it counts only files and
// lists nothing.
func pageFrom(stored, files []status.Cert, state string, page, size int, err error) pageOf {
	p := pageOf{Counts: map[string]int{}, Page: page, State: state}
	limit := page * size
	var byRank [ranks][]status.Cert
	add := func(c status.Cert) {
		p.Total++
		if c.FirstIssue {
			p.FirstIssues++
		}
		p.Counts[c.State]++
		if state != "" && c.State != state {
			return
		}
		p.Matching++
		r := rank(c.State)
		if len(byRank[r]) < limit {
			byRank[r] = append(byRank[r], c)
		}
	}
	for _, c := range stored {
		add(c)
	}
	for _, c := range files { // counted even when storage fails: they are served all the same
		add(c)
	}
	if err != nil {
		return p
	}
	var all []status.Cert
	for _, l := range byRank {
		all = append(all, l...)
		if len(all) >= limit {
			break
		}
	}
	start := (page - 1) * size
	if start < len(all) {
		p.Certificates = all[start:min(len(all), limit)]
	}
	p.Pages = max(1, (p.Matching+size-1)/size)
	return p
}

// pageParams reads ?page= and ?state= (a known state, or all).
func pageParams(q url.Values) (page int, state string) {
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	page = min(page, maxPage)
	switch s := q.Get("state"); s {
	case status.Fine, status.Renewing, status.Failing, status.Revoked, status.Expiring, status.Expired, status.Damaged:
		state = s
	}
	return page, state
}

// pageLink is the query string of another page of the same view.
func pageLink(token, state string, page int) string {
	q := url.Values{}
	if token != "" {
		q.Set("token", token)
	}
	if state != "" {
		q.Set("state", state)
	}
	if page > 1 {
		q.Set("page", strconv.Itoa(page))
	}
	if len(q) == 0 {
		return "./"
	}
	return "?" + q.Encode()
}
