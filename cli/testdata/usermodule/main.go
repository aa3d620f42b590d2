// Command mycertkeeper is certkeeper built with one more DNS provider,
// nsupdate: the module TestUserModuleProvider builds, and the shape of the
// one docs/dns.md ("Building certkeeper with another provider") shows.
package main

import (
	"github.com/certkeeper/certkeeper/cli"
	"github.com/certkeeper/certkeeper/dnsprovider"

	"example.test/mycertkeeper/nsupdate"
)

func main() {
	cli.Main(cli.WithDNSProvider(dnsprovider.Provider{
		Name: "nsupdate",
		Help: "RFC 2136 updates (example.test/mycertkeeper/nsupdate, written for a test)",
		Settings: []dnsprovider.Setting{
			{Name: "server", Help: "the primary server, host:port", Required: true},
			{Name: "key_name", Help: "the TSIG key's name", Required: true},
			{Name: "key_alg", Help: "hmac-sha256 (default) or hmac-sha512"},
			{Name: "secret", Help: "the TSIG secret, base64", Secret: true, Required: true},
		},
		New: dnsprovider.JSON[nsupdate.Provider](),
	}))
}
