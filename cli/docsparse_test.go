//go:build unix

package cli

import (
	"strings"
	"testing"
)

// TestDocsNotRunParse parses, as TestHelpExamples does, every certkeeper
// command line in the shell blocks that TestDocs does not run (those marked
// <!-- not run: REASON -->): they need root, a public CA or another tool's
// state, but a renamed flag or command must still fail here.
func TestDocsNotRunParse(t *testing.T) {
	n := 0
	for file, blocks := range docBlocks(t) {
		for _, b := range blocks {
			if b.lang != "sh" || b.notRun == "" {
				continue
			}
			for _, line := range shellLines(b.text) {
				for _, args := range certkeeperInvocations(line) {
					n++
					if err := parseExample(args); err != nil {
						t.Errorf("%s:%d (not run: %s): %q: %v", file, b.line, b.notRun, line, err)
					}
				}
			}
		}
	}
	t.Logf("parsed %d certkeeper command lines in blocks not run", n)
	if n < 20 {
		t.Errorf("found %d certkeeper command lines in the blocks not run, want at least 20", n)
	}
}

// TestDocsNginxCommentsParse parses every certkeeper command line in the
// comments of the docs' nginx blocks (deploy/nginx/nginx.conf among them:
// how to start the server, make the fallback and the --api-cert), which no
// test runs.
func TestDocsNginxCommentsParse(t *testing.T) {
	n := 0
	for file, blocks := range docBlocks(t) {
		for _, b := range blocks {
			if b.lang != "nginx" {
				continue
			}
			var comments []string
			for _, l := range strings.Split(b.text, "\n") {
				if l = strings.TrimSpace(l); strings.HasPrefix(l, "#") {
					comments = append(comments, strings.TrimPrefix(l, "#"))
				}
			}
			for _, line := range shellLines(strings.Join(comments, "\n")) {
				if !strings.HasPrefix(line, "certkeeper ") {
					continue
				}
				for _, args := range certkeeperInvocations(line) {
					n++
					if err := parseExample(args); err != nil {
						t.Errorf("%s:%d: %q: %v", file, b.line, line, err)
					}
				}
			}
		}
	}
	if n < 3 {
		t.Errorf("found %d certkeeper command lines in the nginx blocks' comments, want at least 3 (deploy/nginx/nginx.conf)", n)
	}
}

// shellLines are the lines of a shell block, continuation lines (ending
// in a backslash) joined.
func shellLines(text string) []string {
	var out []string
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		out = append(out, l)
	}
	return out
}
