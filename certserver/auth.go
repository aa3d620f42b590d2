package certserver

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// minTokenLen is the shortest token LoadTokens accepts: 128 bits of
// base64 or hex is longer.
const minTokenLen = 16

// LoadTokens reads bearer tokens from file: one per line; blank lines and
// lines starting with # are skipped. It refuses a file with no token or a
// token shorter than 16 characters, and (except on Windows) a file that
// group or others may read or write: the tokens fetch private keys. Audit
// lines name a token by its line number, never by its value.
func LoadTokens(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("tokens %s: mode %04o lets group or others read it, and its tokens fetch private keys: chmod 600 %s", file, perm, file)
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

func parseTokens(file string, data []byte) ([]string, error) {
	var tokens []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			tokens = append(tokens, "") // keeps line numbers; never matches
			continue
		}
		if len(t) < minTokenLen || strings.ContainsAny(t, " \t") {
			return nil, fmt.Errorf("tokens %s line %d: a token is one word of at least %d characters", file, line, minTokenLen)
		}
		tokens = append(tokens, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading tokens %s: %w", file, err)
	}
	if strings.Join(tokens, "") == "" {
		return nil, fmt.Errorf("tokens %s: no token in the file", file)
	}
	return tokens, nil
}

// tokenSet is the accepted tokens, immutable once built: a reload swaps
// in a new one (Handler.SetTokens).
type tokenSet struct {
	sums  [][32]byte // SHA-256 of each token, so that comparisons take the same time whatever the lengths
	valid []bool     // false for the empty entries (blank and comment lines): they never match
}

func newTokenSet(tokens []string) *tokenSet {
	s := &tokenSet{sums: make([][32]byte, len(tokens)), valid: make([]bool, len(tokens))}
	for i, t := range tokens {
		if t != "" {
			s.sums[i], s.valid[i] = sha256.Sum256([]byte(t)), true
		}
	}
	return s
}

// SetTokens replaces the accepted tokens (Tokens), e.g. with the token
// file read again on SIGHUP, so that a leaked token is revoked without a
// restart. Requests in progress finish with the tokens they started with;
// the next ones see the new set. It is safe to call while serving.
func (h *Handler) SetTokens(tokens []string) {
	h.tokens.Store(newTokenSet(tokens))
}

// authenticate reports who made r: "token N" (N the token's position,
// from 1: its line in the token file) or "cert SUBJECT" for a client
// certificate the TLS layer verified. Every token is compared, in
// constant time, whichever matches.
func (h *Handler) authenticate(r *http.Request) (string, bool) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return "cert " + r.TLS.VerifiedChains[0][0].Subject.String(), true
	}
	auth := r.Header.Get("Authorization")
	scheme, given, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || given == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(given)))
	set := h.tokens.Load()
	match := 0
	for i := range set.sums {
		if subtle.ConstantTimeCompare(sum[:], set.sums[i][:]) == 1 && set.valid[i] {
			match = i + 1
		}
	}
	if match == 0 {
		return "", false
	}
	return "token " + strconv.Itoa(match), true
}
