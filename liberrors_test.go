package certkeeper_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestLibraryErrorsNameNoFlags: the error texts of the library packages
// name their own fields and options, not the CLI's flags, which a Go user
// does not have (package cli adds the flags: hints.go). The packages
// that exist to serve one CLI command, whose texts are that command's
// advice, are listed apart.
func TestLibraryErrorsNameNoFlags(t *testing.T) {
	cliFacing := map[string]string{
		"cmd":                "the binary's main",
		"cli":                "the CLI itself",
		"tools":              "developer tools",
		"bench":              "benchmarks",
		"internal":           "not importable; test helpers",
		"doctor":             "certkeeper doctor's advice (Fix texts)",
		"migrate":            "certkeeper storage migrate's plan",
		"truststore":         "certkeeper ca trust",
		"certfile/renew":     "certkeeper cert renew (its --force reason)",
		"alpnproxy/iptables": "iptables arguments, not messages",
	}
	flag := regexp.MustCompile(`(^|[\s(])--[a-z]`)
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if _, ok := cliFacing[filepath.ToSlash(path)]; ok || strings.HasPrefix(d.Name(), ".") && path != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok || !(pkg.Name == "fmt" && sel.Sel.Name == "Errorf" || pkg.Name == "errors" && sel.Sel.Name == "New") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if msg, err := strconv.Unquote(lit.Value); err == nil && flag.MatchString(msg) {
				t.Errorf("%s: error text names a CLI flag: %q; name the library's field or option (cli/hints.go adds the flag)",
					fset.Position(lit.Pos()), msg)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
