package hostname

import (
	"slices"
	"strings"
)

// NormalizeAll normalises each of names (see Normalize), dropping
// duplicates, those that are the same once normalised included, and
// keeping the order of first appearance: the names of one certificate as
// an operator lists them, the first naming its files. The first invalid
// name's *NameError is returned, saying "give the host name alone: HOST"
// for a URL or HOST:PORT (WithHostHint).
func (n Normalizer) NormalizeAll(names []string) ([]string, error) {
	var out []string
	seen := make(map[string]bool)
	for _, raw := range names {
		name, err := n.Normalize(raw)
		if err != nil {
			return nil, WithHostHint(raw, err) // a URL or HOST:PORT pasted for a name
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out, nil
}

// WithApex returns names with the apex of every "www." name appended
// after them, unless it is there already: a certificate for www.a.example
// nearly always needs a.example too. A "www." name of a single label more
// ("www.example") brings nothing: "example" is no apex. names must be
// normalised; the result may share its backing array.
func WithApex(names []string) []string {
	out := names
	for _, n := range names {
		if apex, ok := strings.CutPrefix(n, "www."); ok && strings.Contains(apex, ".") && !slices.Contains(out, apex) {
			out = append(out, apex)
		}
	}
	return out
}
