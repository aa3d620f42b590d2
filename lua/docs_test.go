package lua

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// docInitConf is an http block that runs one init call taken from the
// docs, and a plain server on 127.0.0.1:%[2]d to know nginx is up.
const docInitConf = `
  lua_shared_dict certkeeper 1m;
  init_by_lua_block { %[1]s }
  server {
    listen 127.0.0.1:%[2]d;
    location / { return 200 "up\n"; }
  }
`

var nginxBlock = regexp.MustCompile("(?s)```nginx\n(.*?)```")

// docInitCalls returns every require("certkeeper").init(...) call in the
// nginx blocks of the pages under ../docs, by page and line.
func docInitCalls(t *testing.T) map[string]string {
	t.Helper()
	pages, err := filepath.Glob("../docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs pages: %v", err)
	}
	calls := map[string]string{}
	const start = `require("certkeeper").init(`
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		for _, m := range nginxBlock.FindAllStringSubmatchIndex(text, -1) {
			block := text[m[2]:m[3]]
			for off := 0; ; {
				i := strings.Index(block[off:], start)
				if i < 0 {
					break
				}
				i += off
				depth, end := 0, -1
				for j := i + len(start) - 1; j < len(block) && end < 0; j++ {
					switch block[j] {
					case '(':
						depth++
					case ')':
						if depth--; depth == 0 {
							end = j + 1
						}
					}
				}
				where := fmt.Sprintf("%s:%d", strings.TrimPrefix(page, "../"), strings.Count(text[:m[2]+i], "\n")+1)
				if end < 0 {
					t.Errorf("%s: init call without its closing parenthesis", where)
					break
				}
				calls[where] = block[i:end]
				off = end
			}
		}
	}
	return calls
}

// TestDocsInitCalls starts nginx with every init call the docs show, as
// written: a reader who copies one gets an nginx that starts. (init only
// reads its options; nothing is fetched.) server.md once showed a bare
// remote host:port, which init refuses since plain HTTP goes to loopback
// only (trial-nginx).
func TestDocsInitCalls(t *testing.T) {
	calls := docInitCalls(t)
	if len(calls) < 2 {
		t.Fatalf("found %d init calls in the docs' nginx blocks, want at least 2 (nginx.md, server.md)", len(calls))
	}
	for where, call := range calls {
		t.Run(where, func(t *testing.T) {
			port := testsvc.FreePort(t)
			testsvc.Nginx(t, testsvc.NginxOptions{HTTP: fmt.Sprintf(docInitConf, call, port),
				Ready: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}})
		})
	}
}
