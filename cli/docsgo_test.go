//go:build unix

package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// goSource is Go code the tests compile, in normalised lines (goLines):
// an Example function's body, or a whole program a test builds.
type goSource struct {
	where   string
	lines   []string
	imports []string // of the file that holds it
}

// programs are the Go programs under testdata that tests build: whole
// files that a docs snippet may show as they are.
var programs = []string{"cli/testdata/usermodule/main.go"}

// TestDocGoSnippets: every ```go block of the docs stands, line for line
// (indentation, blank lines and comments aside), in Go code that the
// tests compile: the body of an Example function, or a program under
// testdata that a test builds. A complete program in the docs (package
// main) matches by the body of its main and its imports. A snippet edited
// in the docs alone, with a name that no longer exists or a field renamed,
// fails here instead of failing its reader. A block that cannot be
// compiled here (it needs a module certkeeper does not depend on) is
// marked <!-- not compiled: REASON -->.
func TestDocGoSnippets(t *testing.T) {
	sources := exampleSources(t)
	if len(sources) < 20 {
		t.Fatalf("found %d examples: is the walk from .. wrong?", len(sources))
	}
	checked := 0
	for _, blocks := range docBlocks(t) {
		for _, b := range blocks {
			if b.lang != "go" || b.notCompiled != "" {
				continue
			}
			checked++
			if where := findSnippet(b.text, sources); where == "" {
				t.Errorf("%s:%d: this Go snippet stands in no Example function the tests compile: copy it into one "+
					"(ExampleX in the package's example_test.go) or make it the same as the one it was copied from:\n%s",
					b.file, b.line, b.text)
			} else {
				t.Logf("%s:%d: compiled as %s", b.file, b.line, where)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no ```go block found in the docs")
	}
}

// findSnippet returns where the snippet stands in sources, or "".
func findSnippet(text string, sources []goSource) string {
	lines := goLines(text)
	var imports []string
	if len(lines) > 0 && strings.HasPrefix(lines[0], "package ") {
		// A program: as it is in a testdata program, or its main's body
		// in an Example of a file with its imports.
		for _, s := range sources {
			if slices.Equal(s.lines, lines) {
				return s.where
			}
		}
		imports = importPaths(text)
		start := slices.Index(lines, "func main() {")
		if start < 0 || lines[len(lines)-1] != "}" {
			return ""
		}
		lines = lines[start+1 : len(lines)-1]
	}
	for _, s := range sources {
		if contains(s.lines, lines) && subset(imports, s.imports) {
			return s.where
		}
	}
	return ""
}

// exampleSources reads every Example function of the module's tests and
// the testdata programs.
func exampleSources(t *testing.T) []goSource {
	t.Helper()
	var out []goSource
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		imports := fileImports(f)
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || !strings.HasPrefix(fd.Name.Name, "Example") || fd.Body == nil {
				continue
			}
			body := src[fset.Position(fd.Body.Lbrace).Offset+1 : fset.Position(fd.Body.Rbrace).Offset]
			out = append(out, goSource{where: strings.TrimPrefix(path, "../") + ": " + fd.Name.Name, lines: goLines(string(body)), imports: imports})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range programs {
		src, err := os.ReadFile(filepath.Join("..", p))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, goSource{where: p, lines: goLines(string(src)), imports: importPaths(string(src))})
	}
	return out
}

func fileImports(f *ast.File) []string {
	var paths []string
	for _, is := range f.Imports {
		p, _ := strconv.Unquote(is.Path.Value)
		paths = append(paths, p)
	}
	return paths
}

// importPaths are the paths a program's source imports.
func importPaths(src string) []string {
	f, err := parser.ParseFile(token.NewFileSet(), "", src, parser.ImportsOnly)
	if err != nil {
		return []string{"(does not parse: " + err.Error() + ")"}
	}
	return fileImports(f)
}

var goCommentRE = regexp.MustCompile(`^(?:[^"/` + "`" + `]|"(?:[^"\\]|\\.)*"|` + "`[^`]*`" + `|/[^/])*`)

// goLines are src's lines trimmed, without blank lines, comment lines and
// trailing comments, and without the import block and package clause's
// formatting differences (kept as lines).
func goLines(src string) []string {
	var out []string
	for _, l := range strings.Split(src, "\n") {
		l = strings.TrimSpace(l)
		if i := strings.Index(l, "//"); i >= 0 {
			if m := goCommentRE.FindString(l); len(m) < len(l) && strings.HasPrefix(l[len(m):], "//") {
				l = strings.TrimSpace(m)
			}
		}
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// contains reports whether want stands in lines, contiguous.
func contains(lines, want []string) bool {
	if len(want) == 0 {
		return false
	}
	for i := 0; i+len(want) <= len(lines); i++ {
		if slices.Equal(lines[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// TestFindSnippet: a snippet is found only as it stands in an example:
// comments and indentation aside, a changed name is not found; a program
// needs its imports in the example's file.
func TestFindSnippet(t *testing.T) {
	src := []goSource{{where: "ex", imports: []string{"log", "example.test/p"}, lines: goLines(`
	// setup
	x := p.New() // the thing
	log.Fatal(x.Serve("http://a.example")) // comment with "quotes"
`)}}
	for _, tc := range []struct {
		name, snippet, want string
	}{
		{"same", "x := p.New()\nlog.Fatal(x.Serve(\"http://a.example\"))", "ex"},
		{"reindented, other comments", "\t\tx := p.New() // other words\n\n\t\tlog.Fatal(x.Serve(\"http://a.example\"))", "ex"},
		{"a name changed", "x := p.Make()\nlog.Fatal(x.Serve(\"http://a.example\"))", ""},
		{"a line missing between", "// setup\nlog.Fatal(x.Serve(\"http://a.example\"))\nx := p.New()", ""},
		{"program", "package main\n\nimport (\n\t\"log\"\n\t\"example.test/p\"\n)\n\nfunc main() {\n\tx := p.New()\n}\n", "ex"},
		{"program with another import", "package main\n\nimport \"example.test/q\"\n\nfunc main() {\n\tx := p.New()\n}\n", ""},
	} {
		if got := findSnippet(tc.snippet, src); got != tc.want {
			t.Errorf("%s: found in %q, want %q", tc.name, got, tc.want)
		}
	}
}
