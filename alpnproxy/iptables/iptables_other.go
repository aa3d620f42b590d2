//go:build !linux

package iptables

import (
	"context"
	"errors"
)

var errLinuxOnly = errors.New("iptables is Linux-only")

// Check fails: the rules are set up with Linux's iptables.
func (r *Redirect) Check() error { return errLinuxOnly }

// Install fails: the rules are set up with Linux's iptables.
func (r *Redirect) Install(ctx context.Context) error { return errLinuxOnly }

// Remove does nothing: there are no rules to remove.
func (r *Redirect) Remove(ctx context.Context) error { return nil }

// Tagged finds nothing: there are no rules.
func Tagged(ctx context.Context) ([]string, error) { return nil, nil }
