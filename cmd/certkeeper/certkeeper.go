// Command certkeeper obtains, stores, serves and renews TLS certificates
// from ACME CAs (Let's Encrypt by default) or its own local CA.
//
// The command itself lives in package cli, so that a program can build
// certkeeper with more in it (docs/dns.md). Run "certkeeper help" for the
// list of commands.
package main

import "github.com/certkeeper/certkeeper/cli"

func main() { cli.Main() }
