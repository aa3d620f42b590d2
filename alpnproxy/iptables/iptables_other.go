//go:build !linux

package main

import (
	"context"
	"errors"
)

var errIPTablesLinuxOnly = errors.New("iptables is Linux-only")

// checkIPTables fails: the rules are set up with Linux's iptables.
func checkIPTables(ipv6 bool) error { return errIPTablesLinuxOnly }

func (r *redirectRules) Install(ctx context.Context) error { return errIPTablesLinuxOnly }

func (r *redirectRules) Remove(ctx context.Context) error { return nil }
