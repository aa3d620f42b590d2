// Command handshakes measures full TLS handshakes per second served by a
// certkeeper Manager against a plain crypto/tls server holding one fixed
// certificate, on the same names, so the cost of certkeeper's certificate
// lookup shows as a ratio measured in one run.
//
// Each measurement is a server process and a client process pinned to
// different cores (taskset, when present); runs of the two servers are
// interleaved so drift in the machine's speed hits both alike; the result
// is the median of the runs. TLS 1.3, ECDSA P-256 leaves, X25519, no
// session resumption.
//
//	go run ./bench/handshakes -runs 5 -duration 5s
//
// It prints one line per run and a summary with the ratio
// certkeeper/fixed.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/bench/internal/load"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

func main() {
	role := flag.String("role", "driver", "driver, server or client (the driver starts the others)")
	mode := flag.String("mode", "certkeeper", "server: certkeeper or fixed")
	addr := flag.String("addr", "127.0.0.1:0", "server: listen address; client: server address")
	dir := flag.String("dir", "", "server: storage directory (certificates are made there by the driver)")
	rootFile := flag.String("root", "", "client: PEM root to verify against")
	duration := flag.Duration("duration", 5*time.Second, "length of one run")
	runs := flag.Int("runs", 5, "runs per server")
	names := flag.Int("names", 16, "distinct server names the client cycles through")
	conns := flag.Int("conns", 4, "client: concurrent connections")
	flag.Parse()
	var err error
	switch *role {
	case "server":
		err = server(*mode, *addr, *dir, *names)
	case "client":
		var n int
		n, err = client(*addr, *rootFile, *names, *conns, *duration)
		if err == nil {
			fmt.Println(n)
		}
	default:
		err = driver(*runs, *duration, *names)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "handshakes:", err)
		os.Exit(1)
	}
}

var quiet = slog.New(slog.DiscardHandler)

func name(i int) string { return fmt.Sprintf("n%d.bench.test", i) }

// manager returns a Manager on the local CA in dir.
func manager(dir string) *certkeeper.Manager {
	st := filestore.New(dir)
	return &certkeeper.Manager{
		Storage: st,
		Issuers: []issuer.Issuer{&localca.CA{Storage: st, Lifetime: 24 * time.Hour, Logger: quiet}},
		Logger:  quiet,
	}
}

// driver makes the certificates, then interleaves runs of both servers.
func driver(runs int, d time.Duration, names int) error {
	dir, err := os.MkdirTemp("", "certkeeper-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m := manager(dir)
	ctx := context.Background()
	for i := range names {
		if err := m.Cert(ctx, name(i)); err != nil {
			return err
		}
	}
	rootPEM, err := (&localca.CA{Storage: filestore.New(dir)}).RootPEM(ctx)
	if err != nil {
		return err
	}
	m.Close()
	rootFile := dir + "/root.pem"
	if err := os.WriteFile(rootFile, rootPEM, 0o644); err != nil {
		return err
	}
	results := map[string][]float64{}
	for r := range runs {
		for _, mode := range []string{"fixed", "certkeeper"} {
			hs, err := oneRun(mode, dir, rootFile, names, d)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", mode, r+1, err)
			}
			rate := float64(hs) / d.Seconds()
			results[mode] = append(results[mode], rate)
			fmt.Printf("run %d %-10s %8.0f handshakes/s\n", r+1, mode, rate)
		}
	}
	fixed, ck := median(results["fixed"]), median(results["certkeeper"])
	fmt.Printf("median: fixed %.0f/s, certkeeper %.0f/s, ratio certkeeper/fixed %.3f\n", fixed, ck, ck/fixed)
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// pinned runs the binary itself with args on one core when taskset exists.
func pinned(core int, args ...string) *exec.Cmd {
	self, _ := os.Executable()
	if ts, err := exec.LookPath("taskset"); err == nil {
		return exec.Command(ts, append([]string{"-c", strconv.Itoa(core), self}, args...)...)
	}
	return exec.Command(self, args...)
}

func oneRun(mode, dir, rootFile string, names int, d time.Duration) (int, error) {
	srv := pinned(0, "-role", "server", "-mode", mode, "-dir", dir, "-names", strconv.Itoa(names))
	out, err := srv.StdoutPipe()
	if err != nil {
		return 0, err
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	var line [128]byte
	n, err := out.Read(line[:])
	if err != nil {
		return 0, fmt.Errorf("server did not report its address: %w", err)
	}
	addr := strings.TrimSpace(string(line[:n]))
	cl := pinned(1, "-role", "client", "-addr", addr, "-root", rootFile, "-names", strconv.Itoa(names), "-duration", d.String())
	cl.Stderr = os.Stderr
	res, err := cl.Output()
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(res)))
}

// server serves TLS handshakes until killed; it prints its address.
func server(mode, addr, dir string, names int) error {
	var cfg *tls.Config
	switch mode {
	case "certkeeper":
		m := manager(dir)
		// Load every certificate into memory first, as a running server has.
		for i := range names {
			if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name(i)}); err != nil {
				return err
			}
		}
		cfg = m.TLSConfig()
	case "fixed":
		m := manager(dir)
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name(0)})
		if err != nil {
			return err
		}
		// One certificate for every name: the client does not verify the
		// name against it in fixed mode (see client), only the chain.
		cfg = &tls.Config{Certificates: []tls.Certificate{*c}}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	cfg.MinVersion = tls.VersionTLS13
	cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	cfg.SessionTicketsDisabled = true
	ln, err := tls.Listen("tcp", addr, cfg)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if err := c.(*tls.Conn).Handshake(); err == nil {
				_, _ = io.Copy(io.Discard, c)
			}
		}()
	}
}

// client makes full handshakes for d with conns connections, cycling
// through the names, and returns how many completed. It verifies the chain
// against the root but not the name, so both servers do the same work.
func client(addr, rootFile string, names, conns int, d time.Duration) (int, error) {
	pem, err := os.ReadFile(rootFile)
	if err != nil {
		return 0, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	done, err := load.Run(conns, d, func(w, n int) error {
		i := w + n
		cfg := &tls.Config{
			ServerName: name(i % names), MinVersion: tls.VersionTLS13,
			CurvePreferences: []tls.CurveID{tls.X25519}, InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
				return err
			},
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
	if err != nil {
		return 0, err
	}
	if done == 0 {
		return 0, errors.New("no handshake completed")
	}
	return done, nil
}
