package cmdline

import (
	"errors"
	"regexp"
	"slices"
	"strings"
)

// flagRef matches a flag as messages name it: --name.
var flagRef = regexp.MustCompile(`(?:^|[^-\w])--([a-z][a-z0-9]*(?:[.-][a-z0-9]+)*)`)

// FlagsIn returns, in order and once each, the names of the flags that msg
// names as --name.
func FlagsIn(msg string) []string {
	var names []string
	for _, m := range flagRef.FindAllStringSubmatch(msg, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}

// AttributedError is an error that names flags (--tls-addr) whose values
// came from somewhere else, a config file's keys: Where says where each
// came from, so that the operator who wrote tls_addr in a file is not sent
// looking for a --tls-addr on a command line that has none.
type AttributedError struct {
	Err error
	// Where is, for each flag named, where its value came from, as
	// "--tls-addr is tls_addr in /etc/certkeeper/proxy.yaml".
	Where []string
}

func (e *AttributedError) Error() string {
	return e.Err.Error() + "; " + strings.Join(e.Where, ", ")
}

func (e *AttributedError) Unwrap() error { return e.Err }

// joined returns a copy of the errors err joins (errors.Join: its message
// is theirs, a line each), or nil for any other error, one that wraps
// several with text of its own included.
func joined(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return nil
	}
	errs := slices.Clone(j.Unwrap())
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	if len(errs) < 2 || strings.Join(msgs, "\n") != err.Error() {
		return nil
	}
	return errs
}

// Attribute returns err with, for each flag it names whose value came from
// elsewhere than the command line, where that was. source says where the
// value of a flag (as "--name") came from: the flag itself when given,
// "default" when nobody gave it, else the place (a file's key) it names;
// only places are added. err is returned as it is when it names none.
func Attribute(err error, source func(flag string) string) error {
	if err == nil || source == nil {
		return err
	}
	if errs := joined(err); errs != nil { // each mistake its own note, not every note after the last
		for i, e := range errs {
			errs[i] = Attribute(e, source)
		}
		return errors.Join(errs...)
	}
	var where []string
	for _, name := range FlagsIn(err.Error()) {
		if s := source("--" + name); s != "--"+name && s != "default" {
			where = append(where, "--"+name+" is "+s)
		}
	}
	if len(where) == 0 {
		return err
	}
	return &AttributedError{Err: err, Where: where}
}
