package redisstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/internal/redact"
	"github.com/redis/go-redis/v9"
)

// DefaultTimeout bounds dialling Redis and every read and write of a Store
// from Open, unless the URL's timeout parameter says otherwise.
const DefaultTimeout = 2 * time.Second

// Default ports.
const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
)

// config is what a URL describes.
type config struct {
	mode     string // "standalone", "cluster" or "sentinel"
	tls      bool
	addrs    []string
	user     string
	password string
	master   string // sentinel only
	db       int
	prefix   string
	timeout  time.Duration
	lease    time.Duration

	sentinelUser     string
	sentinelPassword string
}

// Open returns a Store on the Redis that rawURL describes (see the package
// documentation for the URL forms), with dial, read and write timeouts of
// DefaultTimeout and few retries, so that operations on an unreachable
// Redis fail within a few seconds. Open does not connect: the first
// operation does. Close the Store to close its client.
//
// Errors from Open never contain the URL's password.
func Open(rawURL string) (*Store, error) {
	cfg, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opts := &redis.UniversalOptions{
		Addrs:            cfg.addrs,
		DB:               cfg.db,
		Username:         cfg.user,
		Password:         cfg.password,
		MasterName:       cfg.master,
		SentinelUsername: cfg.sentinelUser,
		SentinelPassword: cfg.sentinelPassword,
		IsClusterMode:    cfg.mode == "cluster",
		DialTimeout:      cfg.timeout,
		ReadTimeout:      cfg.timeout,
		WriteTimeout:     cfg.timeout,
		PoolTimeout:      cfg.timeout,
		// Fail fast rather than hide an outage behind retries: a
		// command is tried twice, a connection dialled twice.
		MaxRetries:    1,
		DialerRetries: 2,
		// Names the connections in CLIENT LIST, for operators.
		ClientName: "certkeeper",
	}
	if cfg.tls {
		// The driver dials with tls.DialWithDialer, which verifies each
		// node's certificate against the host name it dials.
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	s := New(redis.NewUniversalClient(opts), cfg.prefix)
	s.LeaseTTL = cfg.lease
	switch cfg.mode {
	case "cluster":
		s.where = "Redis Cluster at " + strings.Join(cfg.addrs, ",")
	case "sentinel":
		s.where = fmt.Sprintf("Redis master %q via Sentinels at %s", cfg.master, strings.Join(cfg.addrs, ","))
	default:
		s.where = "Redis at " + cfg.addrs[0]
	}
	return s, nil
}

// parseURL parses a Redis URL by hand rather than with url.Parse, whose
// errors quote the whole URL, password included, or the piece of it they
// choked on. Its errors show the URL only as redact.URL gives it.
func parseURL(rawURL string) (*config, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, errors.New(`redisstore: URL has no scheme: want redis://, rediss://, redis+cluster:// or redis+sentinel://`)
	}
	// redacted is the URL without its user information, query and
	// fragment, for errors.
	redacted := redact.URL(rawURL)
	cfg := &config{prefix: DefaultPrefix, timeout: DefaultTimeout}
	if err := cfg.parseScheme(scheme); err != nil {
		return nil, fmt.Errorf("redisstore: URL %s: %w", redacted, err)
	}
	// Split off the user information before anything can quote it.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if strings.Contains(tail, "@") {
		// A password holding "/", "?" or "#" as typed: the user
		// information ends at a later "@" than the authority does. Or an
		// "@" in a parameter. Either way, guessing could connect with a
		// wrong password, or print a piece of the right one.
		return nil, fmt.Errorf(`redisstore: URL %s: an "@" after the first "/", "?" or "#": percent-encode "/", "?", "#", "@" and "%%" in the user name, password and parameters (as %%2F, %%3F, %%23, %%40 and %%25)`, redacted)
	}
	hosts, err := cfg.parseUserinfo(authority)
	if err != nil {
		return nil, err // names no part of the URL
	}
	path, rawQuery, _ := strings.Cut(tail, "?")
	if strings.Contains(tail, "#") {
		return nil, fmt.Errorf("redisstore: URL %s has a fragment", redacted)
	}
	if err := cfg.parseHosts(redacted, hosts); err != nil {
		return nil, err
	}
	if err := cfg.parsePath(redacted, path); err != nil {
		return nil, err
	}
	if err := cfg.parseQuery(redacted, rawQuery); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseScheme sets the mode and TLS from the URL's scheme.
func (cfg *config) parseScheme(scheme string) error {
	switch strings.ToLower(scheme) {
	case "redis":
		cfg.mode = "standalone"
	case "rediss":
		cfg.mode, cfg.tls = "standalone", true
	case "redis+cluster":
		cfg.mode = "cluster"
	case "rediss+cluster":
		cfg.mode, cfg.tls = "cluster", true
	case "redis+sentinel":
		cfg.mode = "sentinel"
	case "rediss+sentinel":
		cfg.mode, cfg.tls = "sentinel", true
	default:
		return errors.New("unknown URL scheme: want redis, rediss, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel")
	}
	return nil
}

// parseUserinfo sets the user name and password from the authority
// (userinfo@hosts) and returns the hosts. Its errors quote nothing of the
// URL.
func (cfg *config) parseUserinfo(authority string) (hosts string, err error) {
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return authority, nil
	}
	user, password, _ := strings.Cut(authority[:at], ":")
	if cfg.user, err = url.PathUnescape(user); err != nil {
		return "", errors.New("redisstore: invalid percent-encoding in the URL's user name")
	}
	if cfg.password, err = url.PathUnescape(password); err != nil {
		return "", errors.New("redisstore: invalid percent-encoding in the URL's password")
	}
	return authority[at+1:], nil
}

// The parse steps below name the URL as u, its redacted form.

// parseHosts sets the addresses, with the mode's default port.
func (cfg *config) parseHosts(u, hosts string) error {
	port := defaultPort
	if cfg.mode == "sentinel" {
		port = defaultSentinelPort
	}
	if hosts == "" {
		return fmt.Errorf("redisstore: URL %s has no host", u)
	}
	for h := range strings.SplitSeq(hosts, ",") {
		addr, err := hostPort(h, port)
		if err != nil {
			return fmt.Errorf("redisstore: URL %s: %w", u, err)
		}
		cfg.addrs = append(cfg.addrs, addr)
	}
	if cfg.mode == "standalone" && len(cfg.addrs) > 1 {
		return fmt.Errorf("redisstore: URL %s names %d hosts: use redis+cluster:// for a Cluster or redis+sentinel:// for Sentinels", u, len(cfg.addrs))
	}
	return nil
}

// parsePath sets the Sentinel master name and the database number.
func (cfg *config) parsePath(u, path string) error {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if segs[0] == "" {
		segs = nil
	}
	if cfg.mode == "sentinel" {
		if len(segs) == 0 {
			return fmt.Errorf("redisstore: URL %s names no master: want redis+sentinel://host:port,.../master[/db]", u)
		}
		m, err := url.PathUnescape(segs[0])
		if err != nil || m == "" {
			return fmt.Errorf("redisstore: URL %s: invalid master name %q", u, segs[0])
		}
		cfg.master, segs = m, segs[1:]
	}
	switch len(segs) {
	case 0:
	case 1:
		db, err := strconv.Atoi(segs[0])
		if err != nil || db < 0 {
			return fmt.Errorf("redisstore: URL %s: database %q is not a number", u, segs[0])
		}
		if cfg.mode == "cluster" && db != 0 {
			return fmt.Errorf("redisstore: URL %s: a Redis Cluster has only database 0", u)
		}
		cfg.db = db
	default:
		return fmt.Errorf("redisstore: URL %s: unexpected path %q", u, path)
	}
	return nil
}

// parseQuery sets the parameters.
func (cfg *config) parseQuery(u, rawQuery string) error {
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return fmt.Errorf("redisstore: URL %s: invalid query", u)
	}
	for name, values := range query {
		v := values[len(values)-1]
		switch name {
		case "prefix":
			cfg.prefix = v
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("redisstore: URL %s: timeout is not a positive duration such as 2s", u)
			}
			cfg.timeout = d
		case "lease":
			d, err := time.ParseDuration(v)
			if err != nil || d < 300*time.Millisecond {
				return fmt.Errorf("redisstore: URL %s: lease is not a duration of at least 300ms such as 30s", u)
			}
			cfg.lease = d
		case "sentinel_user", "sentinel_password":
			if cfg.mode != "sentinel" {
				return fmt.Errorf("redisstore: URL %s: parameter %s needs redis+sentinel://", u, name)
			}
			if name == "sentinel_user" {
				cfg.sentinelUser = v
			} else {
				cfg.sentinelPassword = v
			}
		default:
			return fmt.Errorf("redisstore: URL %s: unknown parameter %q (want prefix, timeout, lease, sentinel_user or sentinel_password)", u, name)
		}
	}
	return nil
}

// hostPort checks host[:port] and adds the default port if there is none.
func hostPort(h, defPort string) (string, error) {
	if h == "" {
		return "", errors.New("empty host")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port: "host", "[::1]" or "::1".
		host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defPort
	}
	if host == "" || strings.ContainsAny(host, " /@[]") {
		return "", fmt.Errorf("invalid host %q", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("invalid port in %q", h)
	}
	return net.JoinHostPort(host, port), nil
}
