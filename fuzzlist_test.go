package certkeeper_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFuzzTargetsRun: every fuzz target in the module is run by
// scripts/test.sh and listed in docs/security.md's fuzzing table, with its
// package. A target that nothing runs finds nothing: filestore's FuzzPath
// and FuzzLockDirName (storage keys to file and lock names) were in
// neither.
func TestFuzzTargetsRun(t *testing.T) {
	targets := map[string]string{} // "pkg FuzzX" -> file
	funcRE := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range funcRE.FindAllStringSubmatch(string(data), -1) {
			targets[filepath.ToSlash(filepath.Dir(path))+" "+m[1]] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) == 0 {
		t.Fatal("found no fuzz targets")
	}

	script, err := os.ReadFile(filepath.Join("scripts", "test.sh"))
	if err != nil {
		t.Fatal(err)
	}
	run := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)\bfuzz (Fuzz\w+) (\.\S*)`).FindAllStringSubmatch(string(script), -1) {
		run[strings.TrimPrefix(m[2], "./")+" "+m[1]] = true // "." for the root package
	}

	doc, err := os.ReadFile(filepath.Join("docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	rowRE := regexp.MustCompile("(?m)^\\| (`Fuzz[^|]*)\\| `([^`]+)` \\|")
	for _, m := range rowRE.FindAllStringSubmatch(string(doc), -1) {
		for _, name := range regexp.MustCompile("`(Fuzz\\w+)`").FindAllStringSubmatch(m[1], -1) {
			listed[m[2]+" "+name[1]] = true
		}
	}

	for target, file := range targets {
		pkg, name, _ := strings.Cut(target, " ")
		if !run[target] {
			t.Errorf("%s (%s) is not run by scripts/test.sh: add `fuzz %s ./%s`", name, file, name, pkg)
		}
		docPkg := pkg
		if pkg == "." {
			docPkg = "certkeeper" // the root package, as the table names it
		}
		if !listed[docPkg+" "+name] {
			t.Errorf("%s (%s) is not in docs/security.md's fuzzing table: add it with package `%s` and its input", name, file, docPkg)
		}
	}
}
