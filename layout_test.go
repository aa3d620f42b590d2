package certkeeper_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeLayout: the README's layout table names every package of the
// module, and every package it names exists. It is the map a newcomer reads
// first; packages that landed in parallel must not fall off it.
func TestReadmeLayout(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := layoutPackages(t, string(readme))
	var missing []string
	for _, dir := range modulePackages(t) {
		if !listed[dir] && !listed[parentOrSelf(dir, listed)] {
			missing = append(missing, dir)
		}
	}
	if len(missing) > 0 {
		t.Errorf("README.md's layout table does not name %d packages (add a row, or add them to a row's list):\n  %s",
			len(missing), strings.Join(missing, "\n  "))
	}
	for dir := range listed {
		if dir == "certkeeper" {
			continue
		}
		if _, err := os.Stat(filepath.FromSlash(dir)); err != nil {
			t.Errorf("README.md's layout table names %s, which does not exist", dir)
		}
	}
}

// parentOrSelf returns the nearest listed ancestor of dir that the table
// names with a trailing "/…" (a row for a whole tree), or "".
func parentOrSelf(dir string, listed map[string]bool) string {
	for d := dir; d != "."; d = filepath.ToSlash(filepath.Dir(d)) {
		if listed[d+"/…"] {
			return d + "/…"
		}
	}
	return ""
}

// layoutPackages reads the table under "## Layout": the first cell's
// backquoted names, where "`a` (+ `b`, `c`)" means a, a/b and a/c.
func layoutPackages(t *testing.T, readme string) map[string]bool {
	t.Helper()
	_, after, ok := strings.Cut(readme, "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no ## Layout section")
	}
	name := regexp.MustCompile("`([^`]+)`")
	listed := map[string]bool{}
	for _, line := range strings.Split(after, "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := strings.Split(line, "|")[1]
		main, sub, _ := strings.Cut(cell, "(+")
		var parents []string
		for _, m := range name.FindAllStringSubmatch(main, -1) {
			p := strings.TrimSuffix(strings.Fields(m[1])[0], " (root)")
			listed[p] = true
			parents = append(parents, p)
		}
		for _, m := range name.FindAllStringSubmatch(sub, -1) {
			for _, p := range parents {
				listed[p+"/"+m[1]] = true
			}
		}
	}
	if len(listed) < 10 {
		t.Fatalf("read only %d packages from README.md's layout table: has its format changed?", len(listed))
	}
	return listed
}

// modulePackages lists the directories holding non-test Go files, outside
// testdata and the tools module.
func modulePackages(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == "testdata" || n == "tools" || (strings.HasPrefix(n, ".") && path != ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dir := filepath.ToSlash(filepath.Dir(path))
			if dir == "." {
				dir = "certkeeper"
			}
			seen[dir] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dirs := make([]string, 0, len(seen))
	for d := range seen {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs
}
