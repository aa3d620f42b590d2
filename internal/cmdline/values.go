package cmdline

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Strings is a repeatable string flag: each use adds a value.
type Strings []string

// String joins the values with commas.
func (s *Strings) String() string { return strings.Join(*s, ",") }

// Set adds v.
func (s *Strings) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// Names is a flag of host names or IP addresses: each use adds its value,
// or the values it separates with commas, as certbot's and lego's -d and
// --domains take them ("-d a.example,www.a.example"), which were refused
// as one invalid name. No name holds a comma. An empty value, or piece,
// is kept, for the names' check to refuse ("-d $UNSET" is a mistake to
// say, not to skip).
type Names []string

// String joins the names with commas.
func (n *Names) String() string { return strings.Join(*n, ",") }

// Set adds the names of v.
func (n *Names) Set(v string) error {
	for name := range strings.SplitSeq(v, ",") {
		*n = append(*n, strings.TrimSpace(name))
	}
	return nil
}

// List is a flag of several values: with Repeat, each use adds one (the
// list starts empty); without, a use replaces the list, a default set
// beforehand, with its one value.
type List struct {
	Values *[]string
	Repeat bool
	// Check, if set, refuses a value before it is added: a usage error
	// at parse, naming the flag.
	Check func(string) error
}

// String joins the values with commas.
func (v *List) String() string {
	if v.Values == nil {
		return ""
	}
	return strings.Join(*v.Values, ",")
}

// Set adds s, or makes it the only value.
func (v *List) Set(s string) error {
	if v.Check != nil {
		if err := v.Check(s); err != nil {
			return err
		}
	}
	if v.Repeat {
		*v.Values = append(*v.Values, s)
	} else {
		*v.Values = []string{s}
	}
	return nil
}

// ParseDuration parses a duration as time.ParseDuration does (300ms, 1h30m),
// and also whole or fractional days: 7d, 1.5d, 1d12h. Negative durations
// are refused.
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q: want a duration such as 7d, 36h, 1h30m or 30s", s)
	s = strings.TrimSpace(s)
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || n < 0 {
			return 0, bad
		}
		days = time.Duration(n * float64(24*time.Hour))
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	return days + d, nil
}

// Duration is a flag.Value for a duration that also takes days (7d), as
// ParseDuration reads them.
type Duration time.Duration

// String is the duration as time.Duration writes it.
func (d *Duration) String() string { return time.Duration(*d).String() }

// Set parses s with ParseDuration.
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 7d, 36h, 1h30m or 30s")
	}
	*d = Duration(v)
	return nil
}

// Settings is a repeatable NAME=VALUE flag: each use sets one entry.
type Settings map[string]string

// String is the entries, sorted, joined with commas.
func (s *Settings) String() string { return strings.Join(s.Entries(), ",") }

// Entries returns the settings as NAME=VALUE, sorted.
func (s *Settings) Entries() []string {
	var kv []string
	for k, v := range *s {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return kv
}

// Set adds or replaces the entry of v, NAME=VALUE (VALUE may be empty).
func (s *Settings) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		// One type serves NAME=VALUE and NAME=FILE flags alike.
		return fmt.Errorf("no NAME= in %q: give NAME=VALUE (NAME=FILE for a file flag)", v)
	}
	if *s == nil {
		*s = map[string]string{}
	}
	(*s)[name] = value
	return nil
}

// ParseTime parses a point in time as a user gives one: an RFC 3339
// time, a date (midnight UTC), a duration from now (ParseDuration: 365d,
// 8760h) or a Unix time in seconds. "" is the zero time (no end).
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("%q: give a date (2027-01-31), an RFC 3339 time, or a duration (365d, 8760h)", s)
}
