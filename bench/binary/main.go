// Command binary measures the certkeeper proxy binary as a whole process
// against a bare crypto/tls + net/http server holding the same certificate:
// server CPU time per connection, in interleaved paired rounds.
//
// Both servers run as child processes for the whole benchmark, pinned
// alike to one core (taskset); the client and the echo backend run on
// another. A round measures both servers one after the other, the order
// alternating between rounds, and its result is the ratio
//
//	bare CPU per connection ÷ proxy CPU per connection
//
// (1.0: the proxy costs what the bare server costs; below 1: it costs
// more). CPU time is the sum over the server's threads of
// /proc/PID/task/TID/schedstat (nanoseconds on CPU), read before and after
// the client's run: unlike a rate over wall time on a shared machine, it
// barely depends on what else the machine runs, and it includes everything
// the process does (GC, background goroutines), not only the handshake.
//
// Two modes, each offering ALPN h2 and http/1.1 as browsers do:
//
//   - handshake: a full TLS 1.3 handshake (X25519, ECDSA P-256, no
//     resumption), then close_notify, reading until the server closes;
//   - https: a full handshake and one GET / per connection, which the proxy
//     forwards to the backend; the bare server forwards it too, with
//     net/http/httputil.ReverseProxy, so both do the same work.
//
// Usage (the binary is built from this module when -bin is not given):
//
//	go run ./bench/binary                           # docs/performance.md: 15 rounds of 2 s
//	go run ./bench/binary -short                    # CI: about 17 s once built; reported, not gated
//
// It prints one line per round and, per mode, the median ratio and its
// spread (minimum, maximum, and the quartiles).
//
// With -against lib, -cpuprofile FILE writes a CPU profile of the library
// server over the whole run (go tool pprof FILE), for finding where a
// server's time goes under this load; it is also what a profile-guided
// build would start from (docs/performance.md: tried, not adopted).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/bench/internal/load"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/proxy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

const serverName = "bench.test"

func main() {
	role := flag.String("role", "driver", "driver, bare, lib, backend or client (the driver starts the others)")
	against := flag.String("against", "proxy", "driver: what to compare with the bare server: proxy (the certkeeper binary), lib (proxy.Server and a Manager in this small binary) or bare (a second bare server: an A/A check of the method)")
	bin := flag.String("bin", "", "driver: the certkeeper binary (default: built from this module into a temporary directory)")
	rounds := flag.Int("rounds", 15, "driver: paired rounds per mode")
	duration := flag.Duration("duration", 2*time.Second, "driver, client: length of one server's share of a round")
	modes := flag.String("modes", "handshake,https", "driver, client: comma-separated modes: handshake, https")
	short := flag.Bool("short", false, "driver: CI mode: 5 rounds of 0.6 s per mode (about 17 s once the binary is built)")
	conns := flag.Int("conns", 8, "client: concurrent connections")
	serverCore := flag.Int("server-core", 0, "driver: the core both servers are pinned to")
	clientCore := flag.Int("client-core", 1, "driver: the core the client and backend are pinned to")
	addr := flag.String("addr", "", "client: server address; bare: backend address")
	dir := flag.String("dir", "", "bare, client: directory with cert.pem, key.pem and root.pem")
	cpuProfile := flag.String("cpuprofile", "", "driver with -against lib: write the library server's CPU profile over the whole run to `FILE`")
	var env stringsFlag
	flag.Var(&env, "server-env", "driver: `VAR=VALUE` set for both servers, e.g. GODEBUG=gctrace=1; repeatable")
	flag.Parse()
	var err error
	switch *role {
	case "bare":
		err = bare(*dir, *addr)
	case "lib":
		err = lib(*dir, *addr, *cpuProfile)
	case "backend":
		err = backend()
	case "client":
		var n int
		n, err = client(*addr, *dir, *modes, *conns, *duration)
		if err == nil {
			fmt.Println(n)
		}
	case "driver":
		if *short {
			*rounds, *duration = 5, 600*time.Millisecond
		}
		if *cpuProfile != "" && *against != "lib" {
			err = errors.New("-cpuprofile needs -against lib (the certkeeper binary takes no profiling flag)")
			break
		}
		d := &driver{bin: *bin, rounds: *rounds, duration: *duration, serverCore: *serverCore, clientCore: *clientCore, env: env, against: *against, cpuProfile: *cpuProfile}
		err = d.run(strings.Split(*modes, ","))
	default:
		err = fmt.Errorf("unknown -role %q: want driver, bare, lib, backend or client", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/binary:", err)
		os.Exit(1)
	}
}

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (f *stringsFlag) String() string     { return strings.Join(*f, ",") }
func (f *stringsFlag) Set(v string) error { *f = append(*f, v); return nil }

type driver struct {
	bin                    string
	rounds                 int
	duration               time.Duration
	serverCore, clientCore int
	env                    []string // for both servers, e.g. GODEBUG=gctrace=1
	against                string   // proxy, lib or bare
	cpuProfile             string   // for the lib server: its CPU profile
	dir                    string
	procs                  []*exec.Cmd
}

// server is one of the two measured processes.
type server struct {
	name string
	pid  int
	addr string
}

func (d *driver) run(modes []string) error {
	dir, err := os.MkdirTemp("", "certkeeper-bench-binary")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d.dir = dir
	defer d.stop()
	if d.bin == "" && d.against == "proxy" {
		d.bin = filepath.Join(dir, "certkeeper")
		fmt.Println("building the certkeeper binary")
		build := exec.Command("go", "build", "-o", d.bin, "github.com/certkeeper/certkeeper/cmd/certkeeper")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building certkeeper (or give -bin): %w", err)
		}
	}
	if err := makeCert(dir); err != nil {
		return err
	}
	backendAddr, _, err := d.start("backend", d.clientCore, "", self(), "-role", "backend")
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	var proxyAddr string
	var proxyPID int
	switch d.against {
	case "proxy":
		proxyAddr, proxyPID, err = d.start("proxy", d.serverCore, "certkeeper: proxy listening on ", d.bin, "proxy",
			"--allow", serverName, "--ca", "local", "--storage", filepath.Join(dir, "storage"),
			"--tls-addr", "127.0.0.1:0", "--backend", "http://"+backendAddr, "--log-level", "warn")
	case "lib", "bare":
		args := []string{"-role", d.against, "-dir", dir, "-addr", backendAddr}
		if d.cpuProfile != "" {
			args = append(args, "-cpuprofile", d.cpuProfile)
		}
		proxyAddr, proxyPID, err = d.start(d.against+"2", d.serverCore, "", self(), args...)
	default:
		err = fmt.Errorf("unknown -against %q: want proxy, lib or bare", d.against)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", d.against, err)
	}
	bareAddr, barePID, err := d.start("bare", d.serverCore, "", self(), "-role", "bare", "-dir", dir, "-addr", backendAddr)
	if err != nil {
		return fmt.Errorf("bare server: %w", err)
	}
	fmt.Printf("comparing the bare server with: %s\n", d.against)
	servers := []server{{"bare", barePID, bareAddr}, {"proxy", proxyPID, proxyAddr}}
	fmt.Printf("servers pinned to core %d, client and backend to core %d; %d rounds of %s per server and mode\n",
		d.serverCore, d.clientCore, d.rounds, d.duration)
	for _, mode := range modes {
		// Warm-up: the proxy loads the certificate from storage at its
		// first handshake; both grow their heaps to their working size.
		for _, s := range servers {
			if _, err := d.client(s, mode, d.duration/2); err != nil {
				return fmt.Errorf("warming up %s (%s): %w", s.name, mode, err)
			}
		}
		var ratios []float64
		perConn := map[string][]float64{}
		for r := range d.rounds {
			order := servers
			if r%2 == 1 {
				order = []server{servers[1], servers[0]}
			}
			us := map[string]float64{}
			for _, s := range order {
				before, err := cpuTime(s.pid)
				if err != nil {
					return err
				}
				n, err := d.client(s, mode, d.duration)
				if err != nil {
					return fmt.Errorf("round %d, %s (%s): %w", r+1, s.name, mode, err)
				}
				after, err := cpuTime(s.pid)
				if err != nil {
					return err
				}
				us[s.name] = float64((after - before).Microseconds()) / float64(n)
				perConn[s.name] = append(perConn[s.name], us[s.name])
			}
			ratio := us["bare"] / us["proxy"]
			ratios = append(ratios, ratio)
			fmt.Printf("%-9s round %2d: bare %6.1f µs/conn, proxy %6.1f µs/conn, ratio %.3f\n", mode, r+1, us["bare"], us["proxy"], ratio)
		}
		s := slices.Clone(ratios)
		slices.Sort(s)
		fmt.Printf("%-9s median ratio bare/proxy %.3f (min %.3f, q1 %.3f, q3 %.3f, max %.3f; %d rounds); median CPU per connection: bare %.1f µs, proxy %.1f µs\n",
			mode, median(s), s[0], s[len(s)/4], s[len(s)*3/4], s[len(s)-1], len(s), median(perConn["bare"]), median(perConn["proxy"]))
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func self() string {
	p, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return p
}

// pinned returns a command running prog on core (taskset, when present).
func pinned(core int, prog string, args ...string) *exec.Cmd {
	if ts, err := exec.LookPath("taskset"); err == nil {
		return exec.Command(ts, append([]string{"-c", strconv.Itoa(core), prog}, args...)...)
	}
	return exec.Command(prog, args...)
}

// start starts a long-running child on core and returns the address it
// listens on: the first stdout line, or, when prefix is set, what follows
// prefix on a stderr line. Its other stderr lines are copied to ours with
// its label in front. taskset execs the program, so the pid is the
// server's own.
func (d *driver) start(label string, core int, prefix, prog string, args ...string) (string, int, error) {
	cmd := pinned(core, prog, args...)
	cmd.Env = append(os.Environ(), d.env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", 0, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	d.procs = append(d.procs, cmd)
	addr := make(chan string, 1)
	forward := func(r io.Reader, find bool) {
		lines := bufio.NewScanner(r)
		for lines.Scan() {
			l := lines.Text()
			if find && strings.HasPrefix(l, prefix) {
				addr <- strings.TrimSpace(strings.TrimPrefix(l, prefix))
				find = false
				continue
			}
			if !strings.HasPrefix(l, "certkeeper: ") {
				fmt.Fprintf(os.Stderr, "%s: %s\n", label, l)
			}
		}
		if find {
			close(addr)
		}
	}
	go forward(stdout, prefix == "")
	go forward(stderr, prefix != "")
	select {
	case a, ok := <-addr:
		if !ok {
			return "", 0, errors.New("exited before listening")
		}
		return a, cmd.Process.Pid, nil
	case <-time.After(30 * time.Second):
		return "", 0, errors.New("not listening after 30 s")
	}
}

// stop ends the servers: SIGTERM, so that a lib server writing a CPU
// profile can finish it, then SIGKILL after 10 s.
func (d *driver) stop() {
	for _, c := range d.procs {
		_ = c.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
}

// client runs one client process against s for dur and returns the number
// of connections it completed.
func (d *driver) client(s server, mode string, dur time.Duration) (int, error) {
	cl := pinned(d.clientCore, self(), "-role", "client", "-addr", s.addr, "-dir", d.dir, "-modes", mode, "-duration", dur.String())
	cl.Stderr = os.Stderr
	out, err := cl.Output()
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}

// cpuTime is the CPU time used so far by every live thread of pid.
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the threads of %d (Linux only): %w", pid, err)
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("schedstat of %d/%s: %w", pid, t.Name(), err)
		}
		total += time.Duration(ns)
	}
	return total, nil
}

// makeCert issues a certificate for serverName from a local CA kept in
// dir/storage (where the proxy finds it at its first handshake) and writes
// it, its key and the root as PEM files for the bare server and the client.
func makeCert(dir string) error {
	ctx := context.Background()
	st := filestore.New(filepath.Join(dir, "storage"))
	quiet := slog.New(slog.DiscardHandler)
	ca := &localca.CA{Storage: st, Logger: quiet}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{ca}, Logger: quiet}
	defer m.Close()
	if err := m.Cert(ctx, serverName); err != nil {
		return fmt.Errorf("issuing the benchmark certificate: %w", err)
	}
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: serverName})
	if err != nil {
		return err
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return err
	}
	var chain []byte
	for _, der := range c.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	root, err := ca.RootPEM(ctx)
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{
		"cert.pem": chain,
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}),
		"root.pem": root,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// bare is the baseline: net/http serving TLS (HTTP/2 and HTTP/1.1, as
// ServeTLS sets it up) with one fixed certificate, forwarding every
// request to the backend with httputil.ReverseProxy.
func bare(dir, backendAddr string) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return err
	}
	target, err := url.Parse("http://" + backendAddr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	// The timeouts a production server sets (as the proxy does): they cost
	// nothing per handshake, and TestHTTPServersHaveTimeouts wants them.
	srv := &http.Server{
		Handler:           httputil.NewSingleHostReverseProxy(target),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:          log.New(io.Discard, "", 0),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return srv.ServeTLS(ln, "", "")
}

// lib is the proxy as a library user would build it: a certkeeper Manager
// (filestore, local CA) behind proxy.Server and proxy.Handler, in this
// small binary. Set against the binary, it tells the cost of certkeeper's
// code from that of the binary's wiring.
func lib(dir, backendAddr, cpuProfile string) error {
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		// Until the driver stops this server (SIGINT): then the profile
		// is written out.
		go func() {
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt)
			<-sig
			pprof.StopCPUProfile()
			_ = f.Close()
			os.Exit(0)
		}()
	}
	st := filestore.New(filepath.Join(dir, "storage"))
	quiet := slog.New(slog.DiscardHandler)
	m := &certkeeper.Manager{
		Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st, Logger: quiet}},
		Policy: policy.Allowlist(serverName), Logger: quiet,
	}
	defer m.Close()
	router, err := proxy.NewRouter(proxy.RouterConfig{Default: "http://" + backendAddr})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	srv := &proxy.Server{
		TLSConfig: m.TLSConfig(),
		Handler:   &proxy.Handler{Router: router, Transport: proxy.NewTransport(), Logger: quiet},
		Logger:    quiet,
	}
	return srv.Serve(ln)
}

// backend answers every request with a short body.
func backend() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello\n")
	}))
}

// client makes new connections to addr for dur with conns workers and
// returns how many completed; each is a full handshake (no resumption),
// plus one GET / in https mode.
func client(addr, dir, mode string, conns int, dur time.Duration) (int, error) {
	pemRoot, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		return 0, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemRoot) {
		return 0, errors.New("no root in root.pem")
	}
	cfg := &tls.Config{
		ServerName: serverName, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"},
		MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519},
	}
	var once func() error
	switch mode {
	case "handshake":
		once = func() error { return handshakeOnly(addr, cfg) }
	case "https":
		tr := &http.Transport{
			TLSClientConfig:   cfg,
			ForceAttemptHTTP2: true,
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}
		hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		once = func() error { return get(hc) }
	default:
		return 0, fmt.Errorf("unknown mode %q: want handshake or https", mode)
	}
	done, err := load.Run(conns, dur, func(int, int) error { return once() })
	if err != nil {
		return 0, err
	}
	if done == 0 {
		return 0, errors.New("no connection completed")
	}
	return done, nil
}

// handshakeOnly makes a handshake, sends close_notify and reads until the
// server closes: no reset on either side, so neither server logs an error.
func handshakeOnly(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.CloseWrite(); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, c)
	return err
}

func get(hc *http.Client) error {
	resp, err := hc.Get("https://" + serverName + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET: %s", resp.Status)
	}
	return nil
}
