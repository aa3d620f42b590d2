package dnsprovider

import (
	"context"
	"strings"
	"testing"

	"github.com/libdns/libdns"
)

// jsonProvider is shaped as libdns providers are: exported fields with
// JSON tags, methods on the pointer.
type jsonProvider struct {
	APIToken string   `json:"api_token"`
	Zone     string   `json:"zone,omitempty"`
	TTL      int      `json:"ttl"`
	Proxied  bool     `json:"proxied"`
	Servers  []string `json:"servers"`
	Ignored  string   `json:"-"`
}

func (p *jsonProvider) AppendRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, nil
}

func (p *jsonProvider) DeleteRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, nil
}

func TestJSON(t *testing.T) {
	newP := JSON[jsonProvider]()
	p, err := newP(Settings{"api_token": "123", "zone": "a.test", "ttl": "60", "proxied": "true", "servers": `["a","b"]`})
	if err != nil {
		t.Fatal(err)
	}
	got := *p.(*jsonProvider)
	if got.APIToken != "123" || got.Zone != "a.test" || got.TTL != 60 || !got.Proxied || len(got.Servers) != 2 {
		t.Errorf("JSON()(settings) = %+v, want every field set", got)
	}

	for _, tc := range []struct {
		name     string
		settings Settings
		want     string
	}{
		{"unknown field", Settings{"api_tokn": "s3cret"}, `unknown field "api_tokn"`},
		{"not a number", Settings{"ttl": "sixty"}, "setting ttl: want a JSON int value"},
		{"wrong type", Settings{"ttl": `"s3cret"`}, "ttl"},
		{"ignored field", Settings{"Ignored": "s3cret"}, "unknown field"},
	} {
		_, err := newP(tc.settings)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: JSON()(%v) = %v, want an error with %q", tc.name, tc.settings, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error %q quotes a value", tc.name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Provider{Name: "my-dns2", New: JSON[jsonProvider](), Settings: []Setting{{Name: "a"}, {Name: "b"}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	for _, p := range []Provider{
		{Name: "", New: ok.New},
		{Name: "My DNS", New: ok.New},
		{Name: "x"},
		{Name: "x", New: ok.New, Settings: []Setting{{Name: "a"}, {Name: "a"}}},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%q, %d settings) = nil, want an error", p.Name, len(p.Settings))
		}
	}
}
