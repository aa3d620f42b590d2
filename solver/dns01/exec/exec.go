// Package exec is a DNS provider that runs a program of yours, for any DNS
// host without a Go provider:
//
//	PROGRAM present FQDN VALUE
//	PROGRAM cleanup FQDN VALUE
//
// FQDN is the TXT record's full name with a trailing dot
// ("_acme-challenge.a.example."), VALUE its text: lego's exec provider's
// default mode, so its scripts work unchanged. With Mode ModeRaw (lego's
// EXEC_MODE=RAW) it runs instead
//
//	PROGRAM present -- DOMAIN TOKEN KEYAUTH
//	PROGRAM cleanup -- DOMAIN TOKEN KEYAUTH
//
// with the identifier (without "*." and trailing dot), the challenge token
// and the key authorization, from which the program computes the value
// (base64url of its SHA-256) and the name itself, as lego's RAW scripts do. The same are in the
// environment as CERTKEEPER_ACTION, CERTKEEPER_FQDN, CERTKEEPER_VALUE and
// CERTKEEPER_ZONE (the zone holding the record, with a trailing dot). Exit
// status 0 means done; anything else fails the challenge, with the
// program's output in the error. The program is never run through a shell;
// a run that its context ends (Timeout, an interrupt) is killed with every
// process it started (internal/proc).
//
// It implements the libdns RecordAppender and RecordDeleter contract, so
// it plugs into dns01.Solver like any libdns provider.
package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libdns/libdns"

	"github.com/certkeeper/certkeeper/internal/hook"
	"github.com/certkeeper/certkeeper/internal/proc"
	"github.com/certkeeper/certkeeper/solver/dns01"
)

// Modes of the Provider: the arguments the program gets.
const (
	// ModeDefault runs PROGRAM present|cleanup FQDN VALUE.
	ModeDefault = ""
	// ModeRaw runs PROGRAM present|cleanup -- DOMAIN TOKEN KEYAUTH, as
	// lego's exec provider does with EXEC_MODE=RAW.
	ModeRaw = "RAW"
)

// Provider runs Program for every record. Program is required; it is safe
// for concurrent use (the program may be run concurrently for different
// records).
type Provider struct {
	// Program is the path of the executable.
	Program string
	// Args are put before the action, e.g. a config file the program
	// takes first.
	Args []string
	// Env is added to the program's environment (KEY=VALUE), after the
	// process's own.
	Env []string
	// Timeout bounds one run. Zero means 2 minutes.
	Timeout time.Duration
	// Mode is ModeDefault or ModeRaw. RAW mode needs the challenge, so it
	// works only through dns01.Solver (which calls PresentChallenge), not
	// through AppendRecords.
	Mode string
}

var _ dns01.ChallengeProvider = (*Provider)(nil)

// PresentChallenge runs the program's present action for c, in Mode.
func (p *Provider) PresentChallenge(ctx context.Context, c dns01.ChallengeRecord) error {
	return p.runChallenge(ctx, "present", c)
}

// CleanUpChallenge runs the program's cleanup action for c, in Mode.
func (p *Provider) CleanUpChallenge(ctx context.Context, c dns01.ChallengeRecord) error {
	return p.runChallenge(ctx, "cleanup", c)
}

func (p *Provider) runChallenge(ctx context.Context, action string, c dns01.ChallengeRecord) error {
	switch p.Mode {
	case ModeDefault:
		_, err := p.runAll(ctx, action, c.Zone, []libdns.Record{c.Record})
		return err
	case ModeRaw:
		rr := c.Record.RR()
		fqdn := libdns.AbsoluteName(rr.Name, c.Zone)
		if !strings.HasSuffix(fqdn, ".") {
			fqdn += "."
		}
		return p.run(ctx, action, fqdn, rr.Data, c.Zone, "--", c.Domain, c.Token, c.KeyAuthorization)
	default:
		return fmt.Errorf("exec provider: mode %q: use %q (FQDN VALUE) or %q (DOMAIN TOKEN KEYAUTH)", p.Mode, ModeDefault, ModeRaw)
	}
}

// AppendRecords runs "PROGRAM present FQDN VALUE" for every TXT record.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return p.runAll(ctx, "present", zone, recs)
}

// DeleteRecords runs "PROGRAM cleanup FQDN VALUE" for every TXT record.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return p.runAll(ctx, "cleanup", zone, recs)
}

func (p *Provider) runAll(ctx context.Context, action, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if p.Mode != ModeDefault {
		return nil, fmt.Errorf("exec provider: mode %q needs the challenge: use it through dns01.Solver", p.Mode)
	}
	var done []libdns.Record
	for _, r := range recs {
		rr := r.RR()
		if rr.Type != "TXT" {
			return done, fmt.Errorf("exec provider: %s record %s: only TXT records are supported", rr.Type, rr.Name)
		}
		fqdn := libdns.AbsoluteName(rr.Name, zone)
		if !strings.HasSuffix(fqdn, ".") {
			fqdn += "."
		}
		if err := p.run(ctx, action, fqdn, rr.Data, zone, fqdn, rr.Data); err != nil {
			return done, err
		}
		done = append(done, r)
	}
	return done, nil
}

// run runs the program with action and args; fqdn, value and zone go into
// the environment.
func (p *Provider) run(ctx context.Context, action, fqdn, value, zone string, args ...string) error {
	if p.Program == "" {
		return errors.New("exec provider: Program is empty")
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := append(append(append([]string(nil), p.Args...), action), args...)
	// Ending ctx (Timeout, an interrupt) kills the program and what it
	// started: a script's curl or sleep does not outlive it.
	cmd := proc.Command(ctx, p.Program, argv...)
	cmd.Env = append(append(hook.Environ(), p.Env...),
		"CERTKEEPER_ACTION="+action, "CERTKEEPER_FQDN="+fqdn, "CERTKEEPER_VALUE="+value, "CERTKEEPER_ZONE="+zone)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		if msg != "" {
			return fmt.Errorf("%s %s %s: %w: %s", p.Program, action, fqdn, err, msg)
		}
		return fmt.Errorf("%s %s %s: %w", p.Program, action, fqdn, err)
	}
	return nil
}
