package certserver

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/fileowner"
	"github.com/certkeeper/certkeeper/internal/regularfile"
)

// minTokenLen is the shortest token LoadTokens accepts: 128 bits of
// base64 or hex is longer.
const minTokenLen = 16

// LoadTokens reads bearer tokens from file: one per line, each a token
// optionally followed by its scope:
//
//	# the shop's nginx pool: its names only
//	Ahd8...Qx  names=*.shop.example,api.example
//	# the Go API servers: every name
//	k2Jw...9c
//
// A token with a scope fetches only the names its patterns match (a.example
// exactly; *.a.example any name under a.example, not a.example itself),
// and gets 403 for others. Blank lines and lines starting with # are
// skipped, and so is a UTF-8 byte-order mark at the start of the file. It refuses a file with no token, a token shorter than 16
// characters, a scope that does not parse (naming the line), and (except
// on Windows) a file that group or others may read or write: the tokens
// fetch private keys. The result, one entry per line ("" for the skipped
// ones), is what Handler.Tokens takes; audit lines name a token by its
// line number, never by its value.
func LoadTokens(file string) ([]string, error) {
	f, err := os.OpenFile(file, os.O_RDONLY|regularfile.Nonblock, 0) // a named pipe must not hang the start or a SIGHUP
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading tokens: %w", &regularfile.Error{Path: file, Mode: fi.Mode()})
	}
	if e := fileowner.SecretExposure(file, fi); e != nil {
		return nil, fmt.Errorf("tokens %s: mode %04o lets %s %s it, and its tokens fetch private keys: %s", file, fi.Mode().Perm(), e.Who, e.Access, e.Fix)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading tokens %s: %w", file, err)
	}
	if len(data) > maxTokenFile {
		return nil, fmt.Errorf("tokens %s: over %d bytes; is it the right file?", file, maxTokenFile)
	}
	return parseTokens(file, data)
}

// maxTokenFile bounds the token file: tens of thousands of tokens.
const maxTokenFile = 4 << 20

// parseTokens parses the token file's content (see LoadTokens). A UTF-8
// byte-order mark at its start (Windows editors write one) is not part
// of the first token: kept, it made that token one no client sends.
func parseTokens(file string, data []byte) ([]string, error) {
	data = bytes.TrimPrefix(data, []byte(bom))
	var tokens []string
	lineOf := map[string]int{} // token → its line
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			tokens = append(tokens, "") // keeps line numbers; never matches
			continue
		}
		secret, _, err := parseToken(t)
		if err != nil {
			return nil, fmt.Errorf("tokens %s line %d: %w", file, line, err)
		}
		if first, ok := lineOf[secret]; ok {
			return nil, fmt.Errorf("tokens %s line %d: the same token as line %d: give each token one line (a names= scope on one would not hold for the other, and commenting one out would not revoke it)", file, line, first)
		}
		lineOf[secret] = line
		tokens = append(tokens, t)
	}
	found := len(lineOf) > 0
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading tokens %s: %w", file, err)
	}
	if !found {
		return nil, fmt.Errorf("tokens %s: no token in the file", file)
	}
	return tokens, nil
}

// bom is the UTF-8 byte-order mark, U+FEFF.
const bom = "\ufeff"

// parseToken splits a token line into the token and its scope (nil: every
// name). A byte-order mark in the token (a file's that parseTokens did not
// strip: files joined, or one inside a line) is refused: it is invisible,
// and no client would send it.
func parseToken(line string) (string, *scope, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 || len(fields[0]) < minTokenLen || strings.HasPrefix(fields[0], "names=") {
		return "", nil, fmt.Errorf("a token of at least %d characters comes first (make one with: openssl rand -hex 24)", minTokenLen)
	}
	if strings.Contains(fields[0], bom) {
		return "", nil, errors.New("the token holds a byte-order mark (U+FEFF), invisible and never sent by a client: remove it (save the file as UTF-8 without BOM)")
	}
	var sc *scope
	for _, f := range fields[1:] {
		v, ok := strings.CutPrefix(f, "names=")
		if !ok || sc != nil {
			return "", nil, fmt.Errorf("after the token only one names=PATTERN,PATTERN may follow, not %q", f)
		}
		var err error
		if sc, err = parseScope(v); err != nil {
			return "", nil, err
		}
	}
	return fields[0], sc, nil
}

// scope is the names a scoped token may fetch; immutable once parsed.
type scope struct {
	exact    map[string]struct{} // normalised names
	suffixes map[string]struct{} // "a.example" for the pattern "*.a.example"
	text     string              // the patterns as written, for audit lines
}

func parseScope(patterns string) (*scope, error) {
	if patterns == "" {
		return nil, errors.New("names= lists no pattern: give names=a.example,*.a.example, or no names= for every name")
	}
	sc := &scope{exact: map[string]struct{}{}, suffixes: map[string]struct{}{}, text: patterns}
	for _, p := range strings.Split(patterns, ",") {
		if p == "" {
			return nil, fmt.Errorf("names=%s: an empty pattern", patterns)
		}
		n, err := hostname.Normalizer{AllowIP: true, AllowWildcard: true}.Normalize(p)
		if err != nil {
			return nil, fmt.Errorf("names=%s: %w", patterns, err)
		}
		if zone, ok := strings.CutPrefix(n, "*."); ok {
			sc.suffixes[zone] = struct{}{}
		} else {
			sc.exact[n] = struct{}{}
		}
	}
	return sc, nil
}

// allows reports whether the scope lets its token fetch name (normalised);
// a nil scope allows every name. It neither locks nor allocates.
func (sc *scope) allows(name string) bool {
	if sc == nil {
		return true
	}
	if _, ok := sc.exact[name]; ok {
		return true
	}
	_, parent, ok := strings.Cut(name, ".")
	return ok && sc.allowsUnder(parent)
}

// outside returns the first of a certificate's names (normalised; a
// wildcard as *.zone) whose key the scope does not let its token hold,
// or "" when it allows them all. A certificate's key serves every name
// on it: a token scoped to n.shop.example must not get the key of a
// certificate that also covers pay.example, nor of *.example. A nil
// scope allows every name. It neither locks nor allocates.
func (sc *scope) outside(names []string) string {
	if sc == nil {
		return ""
	}
	for _, n := range names {
		if zone, ok := strings.CutPrefix(n, "*."); ok {
			if !sc.allowsUnder(zone) {
				return n
			}
		} else if !sc.allows(n) {
			return n
		}
	}
	return ""
}

// allowsUnder reports whether a pattern of the scope covers every name
// under zone: *.zone itself or *.PARENT of it.
func (sc *scope) allowsUnder(zone string) bool {
	if _, ok := sc.suffixes[zone]; ok {
		return true
	}
	for i := 0; i < len(zone); i++ {
		if zone[i] == '.' {
			if _, ok := sc.suffixes[zone[i+1:]]; ok {
				return true
			}
		}
	}
	return false
}

// tokenSet is the accepted tokens, immutable once built: a reload swaps
// in a new one (Handler.SetTokens).
type tokenSet struct {
	sums   [][32]byte // SHA-256 of each token, so that comparisons take the same time whatever the lengths
	valid  []bool     // false for the empty entries (blank and comment lines): they never match
	who    []string   // "token N", N its position from 1, for audit lines
	scopes []*scope   // nil: every name
}

// count is how many tokens of s can match (blank and comment lines
// aside).
func (s *tokenSet) count() int {
	n := 0
	for _, ok := range s.valid {
		if ok {
			n++
		}
	}
	return n
}

// newTokenSet builds the set of tokens, each an entry of Handler.Tokens.
// An entry that does not parse never matches; the error names each.
func newTokenSet(tokens []string) (*tokenSet, error) {
	s := &tokenSet{sums: make([][32]byte, len(tokens)), valid: make([]bool, len(tokens)),
		who: make([]string, len(tokens)), scopes: make([]*scope, len(tokens))}
	var errs []error
	for i, t := range tokens {
		s.who[i] = "token " + strconv.Itoa(i+1)
		if t = strings.TrimSpace(t); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		secret, sc, err := parseToken(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("token %d: %w", i+1, err))
			continue
		}
		s.sums[i], s.valid[i], s.scopes[i] = sha256.Sum256([]byte(secret)), true, sc
	}
	// A token on two entries: which scope holds would depend on the
	// order, so neither matches (fail closed).
	first := map[[32]byte]int{}
	for i := range s.sums {
		if !s.valid[i] {
			continue
		}
		if j, ok := first[s.sums[i]]; ok {
			errs = append(errs, fmt.Errorf("token %d: the same token as token %d: neither is accepted", i+1, j+1))
			s.valid[i], s.valid[j] = false, false
			continue
		}
		first[s.sums[i]] = i
	}
	return s, errors.Join(errs...)
}

// SetTokens replaces the accepted tokens (Tokens), e.g. with the token
// file read again on SIGHUP, so that a leaked token is revoked without a
// restart. Requests in progress finish with the tokens they started with;
// the next ones see the new set. An entry that does not parse is an
// error, and the tokens stay as they were. It is safe to call while
// serving.
func (h *Handler) SetTokens(tokens []string) error {
	set, err := newTokenSet(tokens)
	if err != nil {
		return fmt.Errorf("setting tokens: %w", err)
	}
	h.tokens.Store(set)
	return nil
}

// authenticate reports who made r: "token N" (N the token's position,
// from 1: its line in the token file) and the token's scope, or
// "cert SUBJECT serial HEX" for a client certificate the TLS layer
// verified (every name; the serial tells apart two certificates of one
// subject). A request with both is the certificate's "with token N",
// with the token's scope, and a token that does not match refuses it
// whatever the certificate: a pool given a scoped token and a
// certificate fetched every key, and kept doing so once its token was
// revoked (a security trial). Every token is compared, in constant time,
// whichever matches.
func (h *Handler) authenticate(r *http.Request) (string, *scope, bool) {
	cert := ""
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		c := r.TLS.VerifiedChains[0][0]
		cert = "cert " + c.Subject.String() + " serial " + c.SerialNumber.Text(16)
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return cert, nil, cert != ""
	}
	who, sc, ok := h.bearer(auth)
	if ok && cert != "" {
		who = cert + " with " + who
	}
	return who, sc, ok
}

// bearer checks an Authorization header's bearer token: who it is and
// its scope.
func (h *Handler) bearer(auth string) (string, *scope, bool) {
	scheme, given, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || given == "" {
		return "", nil, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(given)))
	set := h.tokens.Load()
	match := -1
	for i := range set.sums {
		if subtle.ConstantTimeCompare(sum[:], set.sums[i][:]) == 1 && set.valid[i] {
			match = i
		}
	}
	if match < 0 {
		return "", nil, false
	}
	return set.who[match], set.scopes[match], true
}
