package status_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// loggedDirs are the packages whose warnings and errors
// docs/troubleshooting.md lists in its "Logged by the Manager" section:
// the Manager and everything that reads the status model; and the dns-01
// solver's, which its "DNS validation" section lists; the certificate
// server's and its Go client's, and alpn-proxy's, which their own
// sections list; the listeners' connection limits, in "Ports and
// processes"; the engine's check of the DNS provider at start; and
// the OCSP staple keeper's.
var loggedDirs = []string{"..", ".", "../statuspage", "../alert", "../metrics", "../solver/dns01", "../certserver", "../certclient", "../alpnproxy", "../internal/connlimit", "../internal/proxyprotocol", "../engine", "../stapling"}

// logged returns the constant messages (or their constant beginning) of
// the slog Warn and Error calls in the non-test files of dirs.
func logged(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Warn" && sel.Sel.Name != "Error") {
					return true
				}
				arg := call.Args[0]
				for {
					b, ok := arg.(*ast.BinaryExpr)
					if !ok {
						break
					}
					arg = b.X // "constant beginning " + variable
				}
				lit, ok := arg.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				msg, err := strconv.Unquote(lit.Value)
				if err == nil {
					out[strings.TrimSpace(msg)] = fset.Position(lit.Pos()).String()
				}
				return true
			})
		}
	}
	return out
}

// TestTroubleshootingInSync: every warning and error the Manager, the
// status page, alerts and metrics log is listed in docs/troubleshooting.md
// with what to do, and every message the doc's "Logged by the Manager"
// section lists is still printed (issue 18).
func TestTroubleshootingInSync(t *testing.T) {
	data, err := os.ReadFile("../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	msgs := logged(t, loggedDirs...)
	// Printed by "certkeeper status" (cmd/certkeeper/status.go).
	msgs["damaged certificate record(s)"] = "cmd/certkeeper/status.go"
	for msg, where := range msgs {
		if !strings.Contains(doc, msg) {
			t.Errorf("docs/troubleshooting.md does not list %q (logged at %s): add it with what to do", msg, where)
		}
	}
	start := strings.Index(doc, "\n## Logged by the Manager")
	if start < 0 {
		t.Fatal(`docs/troubleshooting.md has no "## Logged by the Manager" section`)
	}
	section := doc[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var listed []string
	for _, m := range regexp.MustCompile("(?m)^\\*\\*`([^`]+)`").FindAllStringSubmatch(section, -1) {
		listed = append(listed, m[1])
	}
	if len(listed) == 0 {
		t.Fatal("the Logged by the Manager section lists no message")
	}
	for _, l := range listed {
		found := slices.ContainsFunc(slices.Collect(mapsKeys(msgs)), func(m string) bool { return strings.HasPrefix(l, m) })
		if !found {
			t.Errorf("docs/troubleshooting.md lists %q, which the code no longer prints: remove or update it", l)
		}
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
