package metrics_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var metricNameRE = regexp.MustCompile(`\bcertkeeper_[a-z_]+[a-z]\b`)

// TestDocumentedMetrics: every metric docs/metrics.md's table lists is
// made by this package (its name is in the source), every certkeeper
// metric the source makes is in the table, and every metric the
// documented alert rules use is in the table: a renamed metric cannot
// leave a rule that never fires.
func TestDocumentedMetrics(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	table, rules := map[string]bool{}, map[string]bool{}
	inRules := false
	for line := range strings.SplitSeq(string(doc), "\n") {
		switch {
		case strings.HasPrefix(line, "| `certkeeper_"):
			name := strings.Trim(strings.SplitN(line, "|", 3)[1], " `")
			table[name] = true
		case strings.HasPrefix(line, "```yaml"):
			inRules = true
		case strings.HasPrefix(line, "```"):
			inRules = false
		case inRules && strings.Contains(line, "expr:"):
			for _, name := range metricNameRE.FindAllString(line, -1) {
				rules[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] = true
			}
		}
	}
	if len(table) < 15 || len(rules) < 3 {
		t.Fatalf("parsed %d metrics and %d used by alert rules from docs/metrics.md: has its layout changed?", len(table), len(rules))
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	source := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`"(certkeeper_[a-z_]+)"`).FindAllStringSubmatch(string(data), -1) {
			source[m[1]] = true
		}
	}
	for name := range table {
		if !source[name] {
			t.Errorf("docs/metrics.md lists %s, which package metrics does not make", name)
		}
	}
	for name := range source {
		if !table[name] {
			t.Errorf("package metrics makes %s, which docs/metrics.md's table does not list", name)
		}
	}
	for name := range rules {
		if !table[name] {
			t.Errorf("an alert rule in docs/metrics.md uses %s, which the table does not list", name)
		}
	}
}
