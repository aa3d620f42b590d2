package certserver

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// minTokenLen is the shortest token LoadTokens accepts: 128 bits of
// base64 or hex is longer.
const minTokenLen = 16

// LoadTokens reads bearer tokens from file: one per line; blank lines and
// lines starting with # are skipped. It refuses a file with no token or a
// token shorter than 16 characters. Audit lines name a token by its line
// number, never by its value.
func LoadTokens(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	return parseTokens(file, data)
}

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

// hashTokens hashes each token, so that comparisons take the same time
// whatever the lengths. Empty tokens never match.
func hashTokens(tokens []string) [][32]byte {
	out := make([][32]byte, len(tokens))
	for i, t := range tokens {
		if t != "" {
			out[i] = sha256.Sum256([]byte(t))
		}
	}
	return out
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
	match := 0
	for i := range h.tokens {
		if subtle.ConstantTimeCompare(sum[:], h.tokens[i][:]) == 1 && h.Tokens[i] != "" {
			match = i + 1
		}
	}
	if match == 0 {
		return "", false
	}
	return "token " + strconv.Itoa(match), true
}
