//go:build unix

package cli

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// The docs test: every ```sh block in README.md and docs/*.md is run as
// written, or carries a <!-- not run: REASON --> marker on the line before
// it. A fenced block without a language, or an indented code block, fails
// the test: it could be a shell example nobody runs.
//
// Each page's blocks run in order in one bash (set -e), as a reader
// following the page in one terminal would: files and variables made by one
// block are there for the next, and a server started in the background
// keeps running until the page ends. The page has its own temporary
// directory: HOME, a working directory, and ROOT standing in for / (with
// the empty etc, var/lib, var/log and usr/local of a fresh host). PATH
// starts with the directory of the binary TestMain built. Each block has
// docsBlockTimeout.
//
// The text is changed only by the table docsRewrites and the flag
// injections of docsInjections; both are listed here so that what runs is
// what the page says, up to these rules.

// docsBlockTimeout bounds one block; docsReady bounds the wait for a
// background server's listener.
const (
	docsBlockTimeout = 40 * time.Second
	docsReady        = 20 * time.Second
)

// docsRewrites are the textual substitutions made in every shell block, in
// order: why each is needed is its why.
var docsRewrites = []struct {
	re   *regexp.Regexp
	repl string
	why  string
}{
	{regexp.MustCompile(`go run \./cmd/certkeeper\b`), "certkeeper",
		"`go run` builds the binary TestMain already built"},
	{regexp.MustCompile(`(^|[\s;&|(])sudo `), "$1",
		"the test runs as whoever runs it; the root-owned paths are under $CK_ROOT"},
	{regexp.MustCompile(`(^|[\s'"=:(>])(/etc|/var|/usr/local)/`), "$1$$CK_ROOT$2/",
		"system paths go under the page's ROOT, a fresh host's empty tree"},
	{regexp.MustCompile(`\b((?:[a-z0-9-]+\.)*[a-z0-9-]+)\.example\b`), "$1.test",
		"names under .example become .test, which Pebble resolves to 127.0.0.1"},
	{regexp.MustCompile(`\b10\.0\.0\.5:6379\b`), "$$CK_REDIS",
		"the examples' Redis server is a redis-server the test starts"},
	{regexp.MustCompile(`\b(127\.0\.0\.1|localhost):(\d{4,5})\b`), "$1:$${CK_PORT_$2}",
		"loopback ports become free ports (the same port number is the same free port on one page)"},
}

// docsInjections are flags added right after a certkeeper command's words
// when the command line does not give them (and the command has the flag,
// by its --help). when decides; value may use the page's variables.
var docsInjections = []struct {
	flag  string
	value string
	when  func(cmd string, line string) bool
	why   string
}{
	{"--storage", `"$CK_STORAGE"`, func(string, string) bool { return true },
		"root's default storage is the host's /var/lib/certkeeper"},
	{"--out-dir", `"$CK_ROOT/etc/ssl"`, func(cmd, _ string) bool { return cmd == "cert issue" || cmd == "cert renew" },
		"root's default --out-dir is the host's /etc/ssl"},
	{"--ca", `"$CK_CA" --ca-roots "$CK_CA_ROOTS"`, namesCertificate,
		"a command that would order a certificate from Let's Encrypt orders it from Pebble"},
	{"--http-addr", `127.0.0.1:$CK_HTTP01`, func(cmd, line string) bool { return cmd == "cert issue" && usesPebble(line) },
		"http-01 is answered on the port Pebble validates, not :80"},
	{"--tls-alpn-addr", `127.0.0.1:$CK_TLSALPN01`, func(cmd, line string) bool { return cmd == "cert issue" && usesPebble(line) },
		"tls-alpn-01 is answered on the port Pebble validates, not :443"},
	{"--tls-addr", `127.0.0.1:$CK_TLSALPN01`, func(cmd, line string) bool { return cmd == "proxy" && usesPebble(line) },
		"the proxy answers tls-alpn-01 on the port Pebble validates, not :443"},
	{"--tls-addr", `127.0.0.1:$CK_PORT_8443`, func(cmd, _ string) bool { return cmd == "proxy" },
		"development mode's 127.0.0.1:8443, on a free port"},
	{"--backend", `http://127.0.0.1:$CK_PORT_8080`, func(cmd, _ string) bool { return cmd == "proxy" },
		"development mode's backend 127.0.0.1:8080, on a free port"},
	{"--listen", `127.0.0.1:$CK_PORT_8999`, func(cmd, _ string) bool { return cmd == "server" },
		"the server's default 127.0.0.1:8999, on a free port"},
	{"--http-addr", `127.0.0.1:$CK_HTTP01`, func(cmd, line string) bool { return cmd == "server" && usesPebble(line) },
		"the server answers http-01 on the port Pebble validates"},
}

// docsRefused are the commands that change the host itself; on the
// page's PATH they fail, so a block must be marked not run to use them.
var docsRefused = []string{"systemctl", "service", "iptables", "ip6tables", "update-ca-certificates", "update-ca-trust", "certutil"}

// docsLongRunning are the commands that serve until stopped: the test runs
// them in the background (if the page does not already) and waits until
// their listener answers; the page's end stops them.
var docsLongRunning = []string{"proxy", "server"}

var namesRE = regexp.MustCompile(`(^|\s)(-d|--allow|--managed|--wildcard)[\s=]`)

// namesCertificate reports whether a command line names a certificate to
// obtain (and so would go to a CA).
func namesCertificate(_, line string) bool { return namesRE.MatchString(line) }

// usesPebble reports whether line, after injections so far, orders from
// Pebble.
func usesPebble(line string) bool { return strings.Contains(line, "$CK_CA") }

// docBlock is one fenced code block of a page.
type docBlock struct {
	file   string
	line   int // of the opening fence, 1-based
	lang   string
	text   string
	notRun string // the marker's reason; "" if unmarked
	// notCompiled is the reason of a go block's <!-- not compiled: REASON
	// --> marker (TestDocGoSnippets); "" if unmarked.
	notCompiled string
}

var (
	fenceRE   = regexp.MustCompile("^( *)(```+|~~~+)\\s*([^\\s`]*)")
	notRunRE  = regexp.MustCompile(`^<!-- not run: (.+?) -->$`)
	notCompRE = regexp.MustCompile(`^<!-- not compiled: (.+?) -->$`)
	listRE    = regexp.MustCompile(`^\s*([-*+]|\d+[.)])\s`)
	markerAny = regexp.MustCompile(`<!--\s*not[ -]run`)
)

// parseDoc returns the fenced blocks of a page and its problems: untagged
// fences, indented code blocks, markers that precede no block.
func parseDoc(file, text string) (blocks []docBlock, problems []string) {
	lines := strings.Split(text, "\n")
	inList := false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		// A backtick in the info string makes it inline code, not a fence.
		if m := fenceRE.FindStringSubmatch(l); m != nil && !(m[2][0] == '`' && strings.Contains(l[len(m[0]):], "`")) {
			indent, fence, lang := len(m[1]), m[2], m[3]
			j := i + 1
			for j < len(lines) && strings.TrimSpace(lines[j]) != fence {
				j++
			}
			var body []string
			for _, b := range lines[i+1 : min(j, len(lines))] {
				body = append(body, b[min(indent, len(b)-len(strings.TrimLeft(b, " "))):])
			}
			b := docBlock{file: file, line: i + 1, lang: lang, text: strings.Join(body, "\n")}
			if k := prevNonBlank(lines, i); k >= 0 {
				if mm := notRunRE.FindStringSubmatch(strings.TrimSpace(lines[k])); mm != nil {
					b.notRun = mm[1]
				}
				if mm := notCompRE.FindStringSubmatch(strings.TrimSpace(lines[k])); mm != nil {
					b.notCompiled = mm[1]
					if lang != "go" {
						problems = append(problems, fmt.Sprintf("%s:%d: a not-compiled marker on a ```%s block: only go blocks are compiled", file, i+1, lang))
					}
				}
			}
			switch {
			case lang == "":
				problems = append(problems, fmt.Sprintf("%s:%d: a code block without a language: tag it (```sh for commands, ```text for output)", file, i+1))
			case lang == "bash" || lang == "shell" || lang == "console" || lang == "shell-session":
				problems = append(problems, fmt.Sprintf("%s:%d: ```%s: tag shell blocks ```sh (the docs test runs those)", file, i+1, lang))
			case b.notRun != "" && lang != "sh":
				problems = append(problems, fmt.Sprintf("%s:%d: a not-run marker on a ```%s block: only sh blocks are run", file, i+1, lang))
			}
			blocks = append(blocks, b)
			i = j
			continue
		}
		if markerAny.MatchString(l) {
			k := nextNonBlank(lines, i)
			if !notRunRE.MatchString(strings.TrimSpace(l)) || k < 0 || fenceRE.FindStringSubmatch(lines[k]) == nil {
				problems = append(problems, fmt.Sprintf("%s:%d: a not-run marker must read <!-- not run: REASON --> on the line before a ```sh block", file, i+1))
			}
		}
		prevBlank := i == 0 || strings.TrimSpace(lines[i-1]) == ""
		switch {
		case listRE.MatchString(l) && (prevBlank || inList):
			inList = true
		case l != "" && l[0] != ' ' && l[0] != '\t':
			inList = false
		}
		if !inList && prevBlank && (strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "    ")) && strings.TrimSpace(l) != "" {
			problems = append(problems, fmt.Sprintf("%s:%d: an indented code block: fence it with a language (```sh for commands)", file, i+1))
			for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], "\t") || strings.HasPrefix(lines[i+1], "    ") || strings.TrimSpace(lines[i+1]) == "") {
				i++
			}
		}
	}
	return blocks, problems
}

func prevNonBlank(lines []string, i int) int {
	for k := i - 1; k >= 0; k-- {
		if strings.TrimSpace(lines[k]) != "" {
			return k
		}
	}
	return -1
}

func nextNonBlank(lines []string, i int) int {
	for k := i + 1; k < len(lines); k++ {
		if strings.TrimSpace(lines[k]) != "" {
			return k
		}
	}
	return -1
}

// docPages are the pages the test reads.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"../README.md"}, pages...)
}

// docBlocks returns the fenced blocks of every page docPages lists,
// named by the page's path from the repository's root (TestDocs reports
// the pages' problems).
func docBlocks(t *testing.T) map[string][]docBlock {
	t.Helper()
	out := map[string][]docBlock{}
	for _, path := range docPages(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		file := strings.TrimPrefix(path, "../")
		out[file], _ = parseDoc(file, string(data))
	}
	return out
}

// helpFlags returns the flags a command's --help lists, memoised.
type helpFlags struct {
	mu    sync.Mutex
	flags map[string]map[string]bool
}

var helpFlagRE = regexp.MustCompile(`(?m)^\s+(--?[a-z0-9-]+)`)

func (h *helpFlags) of(t *testing.T, cmd string) map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.flags[cmd]; ok {
		return f
	}
	out, _ := exec.Command(binary, append(strings.Fields(cmd), "--help")...).CombinedOutput()
	f := make(map[string]bool)
	for _, m := range helpFlagRE.FindAllStringSubmatch(string(out), -1) {
		f["--"+strings.TrimLeft(m[1], "-")] = true
	}
	if h.flags == nil {
		h.flags = make(map[string]map[string]bool)
	}
	h.flags[cmd] = f
	return f
}

var ckCmdRE = regexp.MustCompile(`(^|[\s;&|(])certkeeper((?:\s+[a-z][a-z0-9-]*){1,2})`)

// shellFor turns one block's text into what the test runs: the rewrites,
// the injections, and the long-running commands in the background with a
// readiness check.
func shellFor(t *testing.T, h *helpFlags, text string) string {
	for _, r := range docsRewrites {
		text = r.re.ReplaceAllString(text, r.repl)
	}
	var out []string
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		// A logical line: physical lines joined by trailing backslashes.
		start := i
		for i < len(lines)-1 && strings.HasSuffix(lines[i], `\`) {
			i++
		}
		phys := slices.Clone(lines[start : i+1])
		logical := strings.Join(phys, "\n")
		m := ckCmdRE.FindStringSubmatchIndex(phys[0])
		if m == nil {
			out = append(out, phys...)
			continue
		}
		cmd := knownCommand(t, h, strings.Fields(phys[0][m[4]:m[5]]))
		if cmd == "" {
			out = append(out, phys...)
			continue
		}
		// The end of the command's words in phys[0].
		end := m[4]
		for _, w := range strings.Fields(cmd) {
			end += strings.Index(phys[0][end:], w) + len(w)
		}
		flags := h.of(t, cmd)
		var add []string
		for _, inj := range docsInjections {
			probe := logical + " " + strings.Join(add, " ")
			if !flags[inj.flag] || hasFlag(probe, inj.flag) || !inj.when(cmd, probe) {
				continue
			}
			add = append(add, inj.flag+" "+inj.value)
		}
		if len(add) > 0 {
			phys[0] = phys[0][:end] + " " + strings.Join(add, " ") + phys[0][end:]
		}
		if slices.Contains(docsLongRunning, cmd) {
			last := len(phys) - 1
			code, _ := splitComment(phys[last])
			code = strings.TrimRight(code, " ")
			if !strings.HasSuffix(code, "&") {
				code += " &"
			}
			phys[last] = code
			logical = strings.Join(phys, "\n")
			addr := listenAddr(logical)
			out = append(out, phys...)
			out = append(out, fmt.Sprintf(`ck_ready "$!" %s`, addr))
			continue
		}
		out = append(out, phys...)
	}
	return strings.Join(out, "\n")
}

// knownCommand returns the longest prefix of words (at most two) that is a
// certkeeper command, or "" for none.
func knownCommand(t *testing.T, h *helpFlags, words []string) string {
	for n := min(2, len(words)); n >= 1; n-- {
		cmd := strings.Join(words[:n], " ")
		if len(h.of(t, cmd)) > 0 {
			return cmd
		}
	}
	return ""
}

// hasFlag reports whether line gives flag (--flag or -flag, with a space or
// =).
func hasFlag(line, flag string) bool {
	name := strings.TrimLeft(flag, "-")
	return regexp.MustCompile(`(^|\s)--?` + regexp.QuoteMeta(name) + `(=|\s|$)`).MatchString(line)
}

// splitComment splits a shell line at a # comment outside quotes.
func splitComment(l string) (code, comment string) {
	var q rune
	for i, r := range l {
		switch {
		case q != 0:
			if r == q {
				q = 0
			}
		case r == '\'' || r == '"':
			q = r
		case r == '#' && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t'):
			return l[:i], l[i:]
		}
	}
	return l, ""
}

var listenRE = regexp.MustCompile(`--(?:tls-addr|listen)[ =](\S+)`)

// listenAddr is the address a long-running command's readiness check
// waits for: the last --tls-addr or --listen given.
func listenAddr(line string) string {
	m := listenRE.FindAllStringSubmatch(line, -1)
	if m == nil {
		return "none"
	}
	return m[len(m)-1][1]
}

// docsPrelude is the top of every page's script.
const docsPrelude = `set -e
CK_PIDS=""
ck_ready() { # PID HOST:PORT: PID listens on HOST:PORT within ` + "CK_READY" + ` seconds
	local pid=$1 host=${2%:*} port=${2##*:}
	CK_PIDS="$CK_PIDS $pid"
	case "$host" in ""|0.0.0.0|"[::]") host=127.0.0.1 ;; esac
	host=${host#[}; host=${host%]}
	local i
	for i in $(seq $((CK_READY * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" || true
			echo "docs test: the background command exited before listening on $2" >&2
			return 1
		fi
		if (exec 9<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "docs test: nothing listens on $2 after $CK_READY s" >&2
	return 1
}
ck_alive() { # the servers this page started still run
	local pid
	for pid in $CK_PIDS; do
		kill -0 "$pid" 2>/dev/null || { echo "docs test: background process $pid exited" >&2; return 1; }
	done
}
ck_block() { echo "$1" >> "$CK_MARKS"; echo "=== $1"; }
`

var portVarRE = regexp.MustCompile(`\$\{CK_PORT_(\d+)\}|\$CK_PORT_(\d+)\b`)

// TestDocs runs the documentation's shell blocks.
func TestDocs(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		testsvc.Unavailable(t, "bash", "the docs test runs shell blocks under bash", err)
	}
	h := &helpFlags{}
	type page struct {
		file   string
		blocks []docBlock
	}
	var pages []page
	run, notRun := 0, map[string]int{}
	for _, path := range docPages(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		file := strings.TrimPrefix(path, "../")
		blocks, problems := parseDoc(file, string(data))
		for _, p := range problems {
			t.Error(p)
		}
		var runs []docBlock
		for _, b := range blocks {
			switch {
			case b.lang != "sh":
			case b.notRun != "":
				notRun[b.notRun]++
			default:
				run++
				runs = append(runs, b)
			}
		}
		if len(runs) > 0 {
			pages = append(pages, page{file, runs})
		}
	}
	reasons := slices.Sorted(func(yield func(string) bool) {
		for r := range notRun {
			if !yield(r) {
				return
			}
		}
	})
	total := 0
	for _, r := range reasons {
		total += notRun[r]
	}
	t.Logf("shell blocks: %d run, %d not run", run, total)
	for _, r := range reasons {
		t.Logf("  not run (%d): %s", notRun[r], r)
	}
	for _, p := range pages {
		t.Run(p.file, func(t *testing.T) {
			t.Parallel()
			runPage(t, h, p.file, p.blocks)
		})
	}
}

// runPage runs one page's blocks in one bash.
func runPage(t *testing.T, h *helpFlags, file string, blocks []docBlock) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"root/etc/ssl", "root/var/lib", "root/var/log", "root/usr/local/bin", "root/usr/local/share", "home", "work", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Commands that change the host refuse to run: a block that reaches
	// one fails instead of reloading the host's nginx.
	guard := filepath.Join(dir, "guard")
	if err := os.MkdirAll(guard, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range docsRefused {
		stub := "#!/bin/sh\necho \"docs test: $0 changes the host and is not run here\" >&2\nexit 1\n"
		if err := os.WriteFile(filepath.Join(guard, name), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var script strings.Builder
	script.WriteString(docsPrelude)
	byMarker := map[string]docBlock{}
	for _, b := range blocks {
		id := fmt.Sprintf("%s:%d", b.file, b.line)
		byMarker[id] = b
		fmt.Fprintf(&script, "\nck_block %s\n%s\nck_alive\n", id, shellFor(t, h, b.text))
	}
	script.WriteString("\nck_block end\n")
	text := script.String()

	env := append(os.Environ(),
		"PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+guard+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+filepath.Join(dir, "home"),
		"XDG_DATA_HOME="+filepath.Join(dir, "home/.local/share"),
		"XDG_RUNTIME_DIR="+filepath.Join(dir, "tmp"),
		"TMPDIR="+filepath.Join(dir, "tmp"),
		"CK_ROOT="+root,
		"CK_STORAGE="+filepath.Join(root, "var/lib/certkeeper"),
		"CK_READY="+strconv.Itoa(int(docsReady/time.Second)),
	)
	if strings.Contains(text, "$CK_CA") {
		ca := testca.Start(t, testca.Options{})
		env = append(env, "CK_CA="+ca.DirectoryURL(), "CK_CA_ROOTS="+ca.ListenerRootFile(),
			"CK_HTTP01="+strconv.Itoa(ca.HTTPPort()), "CK_TLSALPN01="+strconv.Itoa(ca.TLSPort()))
	}
	if strings.Contains(text, "$CK_REDIS") {
		env = append(env, "CK_REDIS="+testsvc.Redis(t).Addr())
	}
	// Ports are written into the script, not left to the shell: a URL in
	// single quotes does not expand variables.
	ports := map[string]string{}
	text = portVarRE.ReplaceAllStringFunc(text, func(v string) string {
		m := portVarRE.FindStringSubmatch(v)
		n := m[1] + m[2]
		if ports[n] == "" {
			ports[n] = strconv.Itoa(testsvc.FreePort(t))
		}
		return ports[n]
	})
	scriptFile := filepath.Join(dir, "page.sh")
	if err := os.WriteFile(scriptFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	marksFile := filepath.Join(dir, "marks")
	lastMark := func() string {
		b, _ := os.ReadFile(marksFile)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		return lines[len(lines)-1]
	}

	cmd := exec.Command("bash", scriptFile)
	cmd.Dir = filepath.Join(dir, "work")
	cmd.Env = append(env, "CK_MARKS="+marksFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	defer syscall.Kill(-pgid, syscall.SIGKILL)

	// The watchdog: each block's mark restarts its clock.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	current, since, timedOut := "", time.Now(), ""
	var waitErr error
loop:
	for {
		select {
		case <-tick.C:
			if m := lastMark(); m != current {
				current, since = m, time.Now()
			} else if time.Since(since) > docsBlockTimeout && timedOut == "" {
				timedOut = current
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
		case waitErr = <-done:
			break loop
		}
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	t.Logf("%s: %d blocks in %s", file, len(blocks), time.Since(start).Round(time.Millisecond))
	last := lastMark()
	out, _ := os.ReadFile(logFile.Name())
	if waitErr == nil && last == "end" {
		if testing.Verbose() {
			t.Logf("output of the page's run:\n%s", tail(out, 8192))
		}
		return
	}
	b := byMarker[last]
	switch {
	case timedOut != "":
		t.Errorf("%s: the block did not finish within %s", timedOut, docsBlockTimeout)
	default:
		t.Errorf("%s: the block failed (%v)", last, waitErr)
	}
	t.Errorf("the block as written:\n%s\nas run:\n%s\noutput of the page's run (last 4 KiB):\n%s",
		b.text, shellFor(t, h, b.text), tail(out, 4096))
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// TestParseDoc: the docs test finds what it must refuse (untagged fences,
// indented code blocks, markers that mark nothing) and reads markers.
func TestParseDoc(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		blocks    int
		notRun    string
		problem   string
	}{
		{"tagged", "text\n\n```sh\nls\n```\n", 1, "", ""},
		{"marked", "<!-- not run: needs root -->\n```sh\nls\n```\n", 1, "needs root", ""},
		{"marker in a list", "1. step\n\n   <!-- not run: needs root -->\n   ```sh\n   ls\n   ```\n", 1, "needs root", ""},
		{"untagged", "```\nls\n```\n", 1, "", "without a language"},
		{"bash", "```bash\nls\n```\n", 1, "", "tag shell blocks ```sh"},
		{"indented", "text\n\n    ls -l\n", 0, "", "an indented code block"},
		{"tab-indented", "text\n\n\tls -l\n", 0, "", "an indented code block"},
		{"list continuation", "- item\n\n    more of the item\n", 0, "", ""},
		{"number in a paragraph", "mode\n0600) and more\n\n    ls\n", 0, "", "an indented code block"},
		{"inline code at a line's start", "```` ```sh ```` here\n\n```sh\nls\n```\n", 1, "", ""},
		{"stray marker", "<!-- not run: x -->\n\ntext\n", 0, "", "a not-run marker must"},
		{"marker on go", "<!-- not run: x -->\n```go\nx\n```\n", 1, "x", "only sh blocks are run"},
		{"not compiled on go", "<!-- not compiled: needs a module -->\n```go\nx\n```\n", 1, "", ""},
		{"not compiled on sh", "<!-- not compiled: x -->\n```sh\nls\n```\n", 1, "", "only go blocks are compiled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks, problems := parseDoc("d.md", tc.doc)
			if len(blocks) != tc.blocks {
				t.Errorf("%d blocks, want %d", len(blocks), tc.blocks)
			}
			if len(blocks) > 0 && blocks[0].notRun != tc.notRun {
				t.Errorf("not run %q, want %q", blocks[0].notRun, tc.notRun)
			}
			got := strings.Join(problems, "\n")
			if (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
				t.Errorf("problems %q, want one containing %q", got, tc.problem)
			}
		})
	}
}

// TestShellFor: the rewrites and injections make a documented command
// line into the one the test runs.
func TestShellFor(t *testing.T) {
	h := &helpFlags{}
	for _, tc := range []struct{ in, want string }{
		{"certkeeper cert issue -d a.example --email you@a.example   # on :80",
			`certkeeper cert issue --storage "$CK_STORAGE" --out-dir "$CK_ROOT/etc/ssl" --ca "$CK_CA" --ca-roots "$CK_CA_ROOTS" --http-addr 127.0.0.1:$CK_HTTP01 --tls-alpn-addr 127.0.0.1:$CK_TLSALPN01 -d a.test --email you@a.test   # on :80`},
		{"go run ./cmd/certkeeper cert issue --ca local -d localhost --out-dir ./certs",
			`certkeeper cert issue --storage "$CK_STORAGE" --ca local -d localhost --out-dir ./certs`},
		{"certkeeper proxy &",
			"certkeeper proxy --storage \"$CK_STORAGE\" --tls-addr 127.0.0.1:$CK_PORT_8443 --backend http://127.0.0.1:$CK_PORT_8080 &\nck_ready \"$!\" 127.0.0.1:$CK_PORT_8443"},
		{"sudo install -m 600 /dev/null /etc/certkeeper/tokens",
			"install -m 600 /dev/null $CK_ROOT/etc/certkeeper/tokens"},
		{"curl 'http://127.0.0.1:8999/healthz'", "curl 'http://127.0.0.1:${CK_PORT_8999}/healthz'"},
	} {
		if got := shellFor(t, h, tc.in); got != tc.want {
			t.Errorf("shellFor(%q)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

// TestServerAuditLogFreshHost: --audit-log in a directory that does not
// exist yet (/var/log/certkeeper on a fresh host, as server.md shows it)
// starts the server, with the directory made private.
func TestServerAuditLogFreshHost(t *testing.T) {
	auditLog := filepath.Join(t.TempDir(), "log", "certkeeper", "audit.log")
	startServer(t, "--ca", "local", "--storage", t.TempDir(), "--allow", "a.test",
		"--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t))),
		"--token-file", writeTokens(t), "--audit-log", auditLog)
	for _, p := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Dir(auditLog), 0o700}, {auditLog, 0o600}} {
		fi, err := os.Stat(p.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != p.mode {
			t.Errorf("%s: mode %v, want %v", p.path, got, p.mode)
		}
	}
}
