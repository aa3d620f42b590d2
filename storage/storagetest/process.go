package storagetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage"
)

// Opener opens the backend that config describes. RunProcesses calls it in
// the test process and, through Main, in every child it starts, so that all
// of them share one backend.
type Opener func(config string) (storage.Storage, error)

// Backend describes the backend under test to RunProcesses.
type Backend struct {
	// Open opens the backend. It must be the Opener given to Main.
	Open Opener

	// Config is given to Open in every process: a directory, a server
	// address and key prefix, ... The backend it describes need not be
	// empty; RunProcesses uses keys and lock names under "storagetest/".
	Config string

	// LeaseTTL is the lease duration of the storages that Open returns.
	// Keep it short (about a second): the tests wait for leases of killed
	// holders to expire.
	LeaseTTL time.Duration

	// TakesOverDead says that the backend frees the lock of a holder it
	// can tell is gone at once, rather than when its lease expires (as
	// filestore does on Linux for a holder on the same host). The test
	// of a killed holder then wants the lock within a fraction of a
	// lease; otherwise it wants it after about one, and not sooner.
	TakesOverDead bool
}

// The environment of a child: the role selects what it does, the config
// is given to Open, and the arguments (a JSON childArgs) say on what.
const (
	envRole   = "CERTKEEPER_STORAGETEST_ROLE"
	envConfig = "CERTKEEPER_STORAGETEST_CONFIG"
	envArgs   = "CERTKEEPER_STORAGETEST_ARGS"
)

// Child roles.
const (
	roleContend = "contend" // lock, record enter/exit, bump a counter, unlock; repeat
	roleHold    = "hold"    // lock and hold until killed
	roleWrite   = "write"   // store large values in a loop until killed
)

// childArgs are the arguments of a child, passed as JSON in envArgs.
type childArgs struct {
	Lock       string `json:"lock,omitempty"`
	Key        string `json:"key,omitempty"`
	Log        string `json:"log,omitempty"`        // contend: the shared record file
	Iterations int    `json:"iterations,omitempty"` // contend
	Seq        uint64 `json:"seq,omitempty"`        // write: first sequence number
	Size       int    `json:"size,omitempty"`       // write: bytes of data per value
}

// Main is the TestMain of a backend's tests that call RunProcesses:
//
//	func TestMain(m *testing.M) { storagetest.Main(m, open) }
//
// In the test process it runs the tests (m.Run) and exits. In a child that
// RunProcesses started from the same binary, recognised by its environment,
// it plays the child's role instead, with a storage from open, and exits.
func Main(m *testing.M, open Opener) {
	role := os.Getenv(envRole)
	if role == "" {
		os.Exit(m.Run())
	}
	if err := runChild(role, open); err != nil {
		fmt.Fprintf(os.Stderr, "storagetest child %q: %v\n", role, err)
		os.Exit(3)
	}
	os.Exit(0)
}

// runChild plays role. A child reads its standard input until the parent
// closes it, which happens when the parent exits, however it exits: a
// child whose parent is gone exits too.
func runChild(role string, open Opener) error {
	var args childArgs
	if err := json.Unmarshal([]byte(os.Getenv(envArgs)), &args); err != nil {
		return fmt.Errorf("decoding arguments: %w", err)
	}
	s, err := open(os.Getenv(envConfig))
	if err != nil {
		return fmt.Errorf("opening storage: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stdin := bufio.NewReader(os.Stdin)
	if role == roleContend {
		fmt.Println("ready")
		if _, err := stdin.ReadString('\n'); err != nil { // the parent's "go"
			return fmt.Errorf("waiting for the start: %w", err)
		}
	}
	go func() {
		io.Copy(io.Discard, stdin)
		os.Exit(4) // orphaned
	}()
	switch role {
	case roleContend:
		return childContend(ctx, s, args)
	case roleHold:
		return childHold(ctx, s, args)
	case roleWrite:
		return childWrite(ctx, s, args)
	}
	return errors.New("unknown role")
}

func childContend(ctx context.Context, s storage.Storage, args childArgs) error {
	log, err := os.OpenFile(args.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	pid := os.Getpid()
	for i := range args.Iterations {
		unlock, err := s.Lock(ctx, args.Lock)
		if err != nil {
			return err
		}
		// One write per record: O_APPEND keeps records whole.
		if _, err := fmt.Fprintf(log, "enter %d %d\n", pid, i); err != nil {
			return err
		}
		if err := increment(ctx, s, args.Key); err != nil {
			return err
		}
		time.Sleep(2 * time.Millisecond) // give an overlap time to show
		if _, err := fmt.Fprintf(log, "exit %d %d\n", pid, i); err != nil {
			return err
		}
		unlock()
		time.Sleep(5*time.Millisecond + rand.N(10*time.Millisecond))
	}
	return nil
}

// increment adds one to the decimal counter under key: a read-modify-write
// that loses updates unless the lock excludes the other process.
func increment(ctx context.Context, s storage.Storage, key string) error {
	n := 0
	data, err := s.Load(ctx, key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if n, err = strconv.Atoi(string(data)); err != nil {
			return fmt.Errorf("counter %s: %w", key, err)
		}
	}
	return s.Store(ctx, key, []byte(strconv.Itoa(n+1)))
}

func childHold(ctx context.Context, s storage.Storage, args childArgs) error {
	if _, err := s.Lock(ctx, args.Lock); err != nil {
		return err
	}
	fmt.Println("locked")
	<-ctx.Done() // until killed
	return ctx.Err()
}

func childWrite(ctx context.Context, s storage.Storage, args childArgs) error {
	// Precomputed, so that the loop spends its time storing.
	blobs := [2][]byte{randomBytes(0, args.Size), randomBytes(1, args.Size)}
	for seq := args.Seq; ; seq++ {
		if err := s.Store(ctx, args.Key, encodeValue(seq, blobs[seq%2])); err != nil {
			return err
		}
		if seq == args.Seq {
			fmt.Println("stored")
		}
	}
}

// The writer child stores values "seq N\n" followed by one of two large
// blobs, chosen by the parity of N: consecutive values differ all along,
// so a value torn between two writes shows.
func encodeValue(seq uint64, blob []byte) []byte {
	return append(fmt.Appendf(nil, "seq %d\n", seq), blob...)
}

// decodeValue decodes a value of size bytes of blob and checks that it is
// whole.
func decodeValue(data []byte, size int) (seq uint64, err error) {
	header, blob, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return 0, fmt.Errorf("%d bytes without a header", len(data))
	}
	if _, err := fmt.Sscanf(string(header), "seq %d", &seq); err != nil {
		return 0, fmt.Errorf("header %.40q: %w", header, err)
	}
	if len(blob) != size || !bytes.Equal(blob, randomBytes(seq%2, size)) {
		return seq, fmt.Errorf("value %d: its %d bytes of data are not the %d written", seq, len(blob), size)
	}
	return seq, nil
}

// RunProcesses runs the tests that need several processes, each sharing
// the backend b describes: two processes contending for one lock, a lock
// holder killed with SIGKILL, and a writer killed while writing large
// values. The children are the test binary itself, re-executed; the
// package's TestMain must call Main.
func RunProcesses(t *testing.T, b Backend) {
	t.Helper()
	switch runtime.GOOS {
	case "js", "wasip1", "ios":
		t.Skipf("cannot start processes on %s", runtime.GOOS)
	}
	if b.Open == nil || b.LeaseTTL <= 0 {
		t.Fatal("storagetest.RunProcesses: Backend.Open and Backend.LeaseTTL are required")
	}
	s, err := b.Open(b.Config)
	if err != nil {
		t.Fatalf("opening %q: %v", b.Config, err)
	}
	t.Run("Contend", func(t *testing.T) { testContend(t, b, s) })
	t.Run("KilledHolder", func(t *testing.T) { testKilledHolder(t, b, s) })
	t.Run("KilledWriter", func(t *testing.T) { testKilledWriter(t, b, s) })
}

// testContend has two processes take turns at one lock, each recording
// when it enters and leaves the critical section and incrementing a
// counter there: the records must pair up and the counter must be exact.
func testContend(t *testing.T, b Backend, s storage.Storage) {
	const (
		lock       = "storagetest/contend"
		key        = "storagetest/contend/counter"
		iterations = 20
		processes  = 2
	)
	if err := s.Delete(opContext(t), key); err != nil {
		t.Fatal(err)
	}
	args := childArgs{Lock: lock, Key: key, Log: filepath.Join(t.TempDir(), "records"), Iterations: iterations}
	var children []*child
	for range processes {
		c := startChild(t, b, roleContend, args)
		c.expect(t, "ready")
		children = append(children, c)
	}
	for _, c := range children { // start together
		if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range children {
		if err := c.wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", c.cmd.Process.Pid, err, c.stderr.String())
		}
	}

	data, err := os.ReadFile(args.Log)
	if err != nil {
		t.Fatal(err)
	}
	records := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if got, want := len(records), 2*processes*iterations; got != want {
		t.Fatalf("%d records, want %d:\n%s", got, want, data)
	}
	switches := 0
	for i := 0; i < len(records); i += 2 {
		enter, exit := records[i], records[i+1]
		if !strings.HasPrefix(enter, "enter ") || exit != "exit "+strings.TrimPrefix(enter, "enter ") {
			t.Fatalf("records %d and %d are %q, %q; want one process entering and leaving: the critical sections overlapped",
				i, i+1, enter, exit)
		}
		if i > 0 && strings.Fields(enter)[1] != strings.Fields(records[i-1])[1] {
			switches++
		}
	}
	// Both processes started together, so whichever went second was
	// contending all along. The lock promises exclusion, not fairness: a
	// poller backing off may see the other take every turn until it is
	// done, so one change of hands is all that can be required.
	if switches < 1 {
		t.Errorf("the lock never changed hands between the processes: one of them never held it:\n%s", data)
	}
	got, err := s.Load(opContext(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(processes * iterations); string(got) != want {
		t.Errorf("counter = %s, want %s: an update was lost", got, want)
	}
	t.Logf("the lock changed hands %d times", switches)
}

// testKilledHolder kills a process holding a lock: the lock must be free
// again within about one lease, and not at once; or at once if the backend
// TakesOverDead.
func testKilledHolder(t *testing.T, b Backend, s storage.Storage) {
	const lock = "storagetest/killed-holder"
	c := startChild(t, b, roleHold, childArgs{Lock: lock})
	c.expect(t, "locked")
	wantLocked(t, s, lock)
	killed := time.Now()
	c.kill()

	unlock, err := lockWithin(t, s, lock, 3*b.LeaseTTL+10*time.Second)
	if err != nil {
		t.Fatalf("Lock(%q) after its holder was killed = %v, want nil within about one lease (%v)", lock, err, b.LeaseTTL)
	}
	defer unlock()
	d := time.Since(killed)
	if b.TakesOverDead {
		// kill returns once the child has exited and been reaped: the
		// first attempt finds it gone.
		if d > b.LeaseTTL/2 {
			t.Errorf("Lock(%q) took %v after its holder was killed, want it at once (the backend takes over from dead holders; lease %v)",
				lock, d, b.LeaseTTL)
		}
		t.Logf("lock taken %v after its holder was killed (lease %v)", d, b.LeaseTTL)
		return
	}
	// The lease was written, at the latest, when the child was killed;
	// polling and a loaded machine add a little.
	if d > b.LeaseTTL+3*time.Second {
		t.Errorf("Lock(%q) took %v after its holder was killed, want about one lease (%v)", lock, d, b.LeaseTTL)
	}
	// The lease was written when the child locked, a moment before the
	// kill, and renewed since: it cannot expire much sooner than a lease.
	if d < b.LeaseTTL/3 {
		t.Errorf("Lock(%q) took only %v after its holder was killed: the lease (%v) was not respected", lock, d, b.LeaseTTL)
	}
	t.Logf("lock taken %v after its holder was killed (lease %v)", d, b.LeaseTTL)
}

// testKilledWriter kills a process at random moments while it replaces a
// key with large values: each time, the key must hold a whole value, at
// least as new as the last one the child saw stored.
func testKilledWriter(t *testing.T, b Backend, s storage.Storage) {
	const (
		dir    = "storagetest/killed-writer/"
		key    = dir + "value.json"
		rounds = 6
		size   = 1 << 20
	)
	mustStore(t, s, key, encodeValue(0, randomBytes(0, size)))
	last := uint64(0)
	for round := range rounds {
		first := last + 1
		c := startChild(t, b, roleWrite, childArgs{Key: key, Seq: first, Size: size})
		c.expect(t, "stored")
		time.Sleep(rand.N(100 * time.Millisecond))
		c.kill()

		seq, err := decodeValue(mustLoad(t, s, key), size)
		if err != nil {
			t.Fatalf("round %d: after SIGKILL, Load(%q) returned a torn value: %v", round, key, err)
		}
		if seq < first {
			t.Fatalf("round %d: after SIGKILL, Load(%q) returned value %d, want at least %d, which Store had returned",
				round, key, seq, first)
		}
		t.Logf("round %d: killed after %d stores", round, seq-first+1)
		last = seq
	}
	if got := mustList(t, s, dir); len(got) != 1 || got[0] != key {
		t.Errorf("List(%q) after the kills = %q, want only %q", dir, got, key)
	}
	mustStore(t, s, key, []byte("after"))
	if got := mustLoad(t, s, key); string(got) != "after" {
		t.Errorf("Load(%q) = %.20q, want %q", key, got, "after")
	}
}

// child is a running child process.
type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string // complete lines of its standard output
	stderr  testsvc.Buffer
	exited  chan struct{} // closed when it has exited and been waited for
	waitErr error         // set before exited is closed
}

// startChild starts the test binary as a child in role. The child is
// killed, if it still runs, when the test ends.
func startChild(t *testing.T, b Backend, role string, args childArgs) *child {
	t.Helper()
	data, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	// -test.run=^$: should Main not be wired in, the child runs no test
	// rather than this one again.
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+role, envConfig+"="+b.Config, envArgs+"="+string(data))
	cmd.WaitDelay = 5 * time.Second
	c := &child{cmd: cmd, lines: make(chan string, 16), exited: make(chan struct{})}
	cmd.Stdout = &lineWriter{lines: c.lines}
	cmd.Stderr = &c.stderr
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting child %s: %v", role, err)
	}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.kill)
	return c
}

// expect waits for the child to print line.
func (c *child) expect(t *testing.T, line string) {
	t.Helper()
	timer := time.NewTimer(opTimeout)
	defer timer.Stop()
	select {
	case got := <-c.lines:
		if got != line {
			t.Fatalf("child printed %q, want %q\n%s", got, line, c.stderr.String())
		}
	case <-c.exited:
		t.Fatalf("child exited (%v) before printing %q; does TestMain call storagetest.Main?\n%s",
			c.waitErr, line, c.stderr.String())
	case <-timer.C:
		t.Fatalf("child did not print %q within %v\n%s", line, opTimeout, c.stderr.String())
	}
}

// wait waits for the child to exit.
func (c *child) wait() error {
	<-c.exited
	return c.waitErr
}

// kill kills the child with SIGKILL (TerminateProcess on Windows): it gets
// no chance to clean up, as in a crash. It returns once the child has
// exited.
func (c *child) kill() {
	c.cmd.Process.Kill() // fails only if it has exited already
	<-c.exited
}

// lineWriter passes on the complete lines written to it.
type lineWriter struct {
	mu    sync.Mutex // guards buf
	buf   []byte
	lines chan<- string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case w.lines <- string(w.buf[:i]):
		default: // nobody is reading that many lines
		}
		w.buf = w.buf[i+1:]
	}
}
