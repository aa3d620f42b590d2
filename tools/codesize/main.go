// Command codesize keeps the code readable as it grows: it fails when a
// non-test Go function is longer than -max-func lines, or when the command
// package (the flags, config, output and exit codes of the certkeeper binary)
// holds more than -max-cmd non-test lines. Logic a Go program could call
// belongs in a library package, and a function that does not fit on a couple
// of screens does more than one thing.
//
// Usage (from the tools module, as scripts/test.sh runs it):
//
//	go run ./codesize -dir .. [-max-func 100] [-cmd cli] [-max-cmd 3500]
//
// Test files, testdata directories and generated files are not counted.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	dir := flag.String("dir", ".", "root of the module to check")
	maxFunc := flag.Int("max-func", 100, "most lines a non-test function may have (from `func` to its closing brace)")
	cmdDir := flag.String("cmd", "cli", "the command package, relative to -dir")
	maxCmd := flag.Int("max-cmd", 3500, "most non-test lines the command package may hold")
	flag.Parse()
	problems, cmdLines, err := check(*dir, *maxFunc, *cmdDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "codesize:", err)
		os.Exit(2)
	}
	if cmdLines > *maxCmd {
		problems = append(problems, fmt.Sprintf("%s: %d non-test lines, more than %d: move logic a Go program could call into a library package", *cmdDir, cmdLines, *maxCmd))
	}
	fmt.Printf("%s: %d non-test lines (limit %d); functions limited to %d lines\n", *cmdDir, cmdLines, *maxCmd, *maxFunc)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, p)
		}
		os.Exit(1)
	}
}

// check walks the Go files under root and returns a problem line for every
// function over maxFunc lines, and the number of lines in cmdDir's non-test
// files.
func check(root string, maxFunc int, cmdDir string) (problems []string, cmdLines int, err error) {
	fset := token.NewFileSet()
	cmdAbs := filepath.Join(root, filepath.FromSlash(cmdDir))
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if generated(src) {
			return nil
		}
		if filepath.Dir(path) == cmdAbs {
			cmdLines += bytes.Count(src, []byte("\n"))
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		rel, _ := filepath.Rel(root, path)
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			start, end := fset.Position(fn.Pos()), fset.Position(fn.End())
			if n := end.Line - start.Line + 1; n > maxFunc {
				problems = append(problems, fmt.Sprintf("%s:%d: %s is %d lines, more than %d: split it into steps with names", filepath.ToSlash(rel), start.Line, funcName(fn), n, maxFunc))
			}
		}
		return nil
	})
	sort.Strings(problems)
	return problems, cmdLines, err
}

// funcName returns Recv.Name for a method and Name for a function.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	t := fn.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if g, ok := t.(*ast.IndexExpr); ok {
		t = g.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}

// generated reports whether src carries the standard "Code generated ... DO
// NOT EDIT." line before its package clause.
func generated(src []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "package ") {
			return false
		}
		if strings.HasPrefix(line, "// Code generated ") && strings.HasSuffix(line, " DO NOT EDIT.") {
			return true
		}
	}
	return false
}
