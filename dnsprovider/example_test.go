package dnsprovider_test

import (
	"context"

	"github.com/certkeeper/certkeeper/cli"
	"github.com/certkeeper/certkeeper/dnsprovider"
	"github.com/libdns/libdns"
)

// hostAPI stands for a libdns provider module: a struct configured by its
// JSON fields, with AppendRecords and DeleteRecords.
type hostAPI struct {
	Endpoint string `json:"endpoint"`
	Token    string `json:"token"`
}

func (p *hostAPI) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return recs, nil
}

func (p *hostAPI) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return recs, nil
}

// The main of a certkeeper built with one more provider: --dns hostapi,
// with --dns-setting endpoint=URL and --dns-setting-file token=FILE.
func Example() {
	cli.Main(cli.WithDNSProvider(dnsprovider.Provider{
		Name: "hostapi",
		Help: "my DNS host's API",
		Settings: []dnsprovider.Setting{
			{Name: "endpoint", Help: "the API's URL", Required: true},
			{Name: "token", Help: "an API token", Secret: true, Required: true},
		},
		New: dnsprovider.JSON[hostAPI](),
	}))
}
