package migrate

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// certkeeper stores one certificate per CA and first name
// (storage.CertificateKey), while a tool may hold several with the same
// first name: certbot makes a lineage NAME-0001 beside NAME when it is
// asked for another set of names without --expand. Only one of them can be
// imported; Import decides which before it looks at storage, so a dry run
// and the real run agree, and reports the others (collision).

// collision is a certificate of the State that Import does not import
// because another one of the State, winner, has the same storage key.
type collision struct {
	winner int    // index in State.Certificates
	key    string // the storage key both map to
}

// collisions returns, by index in certs, the certificates that are not
// imported because another of certs has the same CA and first name, and
// which one is. Of such a group, the one imported is, among those whose
// names no other one covers entirely, the one valid longest (the newest:
// certbot renews every lineage), then the one with more names, then the
// first read. Expired certificates take no part: Import skips them anyway.
func collisions(certs []Certificate, now time.Time) map[int]collision {
	groups := map[string][]int{}
	var keys []string
	for i, c := range certs {
		if len(c.Names) == 0 || c.Leaf == nil || now.After(c.Leaf.NotAfter) {
			continue
		}
		key, err := storage.CertificateKey(storage.IssuerID(c.DirectoryURL), c.Names[0])
		if err != nil {
			continue // importCertificate reports it
		}
		if groups[key] == nil {
			keys = append(keys, key)
		}
		groups[key] = append(groups[key], i)
	}
	out := map[int]collision{}
	for _, key := range keys {
		group := groups[key]
		if len(group) < 2 {
			continue
		}
		winner := -1
		for _, i := range group {
			if coveredByAnother(certs, group, i) {
				continue
			}
			if winner < 0 || better(certs[i], certs[winner]) {
				winner = i
			}
		}
		for _, i := range group {
			if i != winner {
				out[i] = collision{winner: winner, key: key}
			}
		}
	}
	return out
}

// coveredByAnother reports whether another certificate of group covers
// every name of certs[i] and more.
func coveredByAnother(certs []Certificate, group []int, i int) bool {
	for _, j := range group {
		if j != i && len(onlyIn(certs[i].Names, certs[j].Names)) == 0 && len(certs[j].Names) > len(certs[i].Names) {
			return true
		}
	}
	return false
}

// better reports whether a is to be imported rather than b: valid longer,
// or as long and for more names.
func better(a, b Certificate) bool {
	if !a.Leaf.NotAfter.Equal(b.Leaf.NotAfter) {
		return a.Leaf.NotAfter.After(b.Leaf.NotAfter)
	}
	return len(a.Names) > len(b.Names)
}

// onlyIn returns the names of a that b lacks.
func onlyIn(a, b []string) []string {
	var out []string
	for _, n := range a {
		if !slices.Contains(b, n) {
			out = append(out, n)
		}
	}
	return out
}

// collisionAction is the Action of c, which is not imported because w,
// imported instead, has the same storage key: Superseded if w covers all
// of c's names, else Skipped, naming both sources, the names only c
// covers and how to obtain them.
func collisionAction(c, w Certificate, key string) Action {
	act := Action{Kind: "certificate", Subject: strings.Join(c.Names, ","), Source: c.Source, Key: key}
	both := fmt.Sprintf("%s and %s both have first name %s, and certkeeper stores one certificate per CA and first name (%s)",
		w.Source, c.Source, c.Names[0], key)
	lost := onlyIn(c.Names, w.Names)
	if len(lost) == 0 {
		act.Result = Superseded
		act.Why = fmt.Sprintf("%s: %s is imported instead, as it covers these names too (%s, not after %s)",
			both, w.Source, strings.Join(w.Names, ","), w.Leaf.NotAfter.UTC().Format(time.RFC3339))
		return act
	}
	why := "valid longer"
	if w.Leaf.NotAfter.Equal(c.Leaf.NotAfter) {
		why = "valid as long, for more names"
		if len(w.Names) == len(c.Names) {
			why = "read first"
		}
	}
	act.Result = Skipped
	act.Why = fmt.Sprintf("%s: %s is imported instead (%s, not after %s; %s); %s, which only this one covers, %s then covered by no certificate: "+
		"get one with certkeeper cert issue --ca %s -d %s (or certkeeper's proxy obtains it at the first handshake)",
		both, w.Source, strings.Join(w.Names, ","), w.Leaf.NotAfter.UTC().Format(time.RFC3339), why,
		strings.Join(lost, ", "), isOrAre(len(lost)), c.DirectoryURL, strings.Join(lost, " -d "))
	return act
}

func isOrAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
