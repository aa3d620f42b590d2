package dnsprovider

import (
	"fmt"
	"net/url"
	"os"
	osexec "os/exec"
	"strings"

	"github.com/certkeeper/certkeeper/solver/dns01"
	dnsexec "github.com/certkeeper/certkeeper/solver/dns01/exec"
	"github.com/certkeeper/certkeeper/solver/dns01/powerdns"
	"github.com/certkeeper/certkeeper/solver/dns01/rfc2136"
)

// Builtin returns the providers every certkeeper has, built from their
// settings as the others are: RFC2136, PowerDNS and Exec. (The command
// gives them their settings from flags of their own, which predate
// settings.)
func Builtin() []Provider { return []Provider{RFC2136(), PowerDNS(), Exec()} }

// RFC2136 is the provider of package rfc2136: dynamic updates signed with
// a TSIG key. Its settings: server (required), and the key as tsig_key
// (NAME:ALG:SECRET) or tsig_key_file (a file rfc2136.ReadKeyFile reads).
func RFC2136() Provider {
	return Provider{
		Name: "rfc2136",
		Help: "dynamic updates with TSIG",
		Settings: []Setting{
			{Name: "server", Help: "host:port of the primary server", Required: true},
			{Name: "tsig_key", Help: "the TSIG key as NAME:ALG:SECRET", Secret: true},
			{Name: "tsig_key_file", Help: "a file holding the TSIG key: NAME:ALG:SECRET, a BIND key clause or a Knot key section"},
		},
		New: newRFC2136,
	}
}

func newRFC2136(s Settings) (dns01.Provider, error) {
	if s["server"] == "" {
		return nil, &SettingError{Provider: "rfc2136", Setting: "server", Problem: Missing, Help: "host:port of the primary server"}
	}
	key := s["tsig_key"]
	if file := s["tsig_key_file"]; file != "" {
		if key != "" {
			return nil, &SettingError{Provider: "rfc2136", Setting: "tsig_key", Other: "tsig_key_file", Problem: GivenTwice}
		}
		var err error
		if key, err = rfc2136.ReadKeyFile(file); err != nil {
			return nil, &SettingError{Provider: "rfc2136", Setting: "tsig_key_file", Problem: BadFile, Err: err}
		}
	}
	if key == "" {
		return nil, &SettingError{Provider: "rfc2136", Setting: "tsig_key", Other: "tsig_key_file", Problem: Missing,
			Help: "the TSIG key as NAME:ALG:SECRET, or a file holding it"}
	}
	p := &rfc2136.Provider{Server: s["server"]}
	if err := p.ParseKey(key); err != nil {
		return nil, err // it names the TSIG key, never quoting its secret
	}
	return p, nil
}

// PowerDNS is the provider of package powerdns: PowerDNS's HTTP API. Its
// settings: api_url (http:// or https://) and api_key_file (a file
// holding the API key alone on one line), both required.
func PowerDNS() Provider {
	return Provider{
		Name: "powerdns",
		Help: "PowerDNS's HTTP API",
		Settings: []Setting{
			{Name: "api_url", Help: "the URL of the PowerDNS HTTP API", Required: true},
			{Name: "api_key_file", Help: "a file holding its api-key", Required: true},
		},
		New: newPowerDNS,
	}
}

func newPowerDNS(s Settings) (dns01.Provider, error) {
	apiURL, file := s["api_url"], s["api_key_file"]
	for _, set := range PowerDNS().Settings {
		if s[set.Name] == "" {
			return nil, &SettingError{Provider: "powerdns", Setting: set.Name, Problem: Missing, Help: set.Help}
		}
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &SettingError{Provider: "powerdns", Setting: "api_url", Problem: Invalid,
			Err: fmt.Errorf("%q: want an http:// or https:// URL such as http://127.0.0.1:8081", apiURL)}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &SettingError{Provider: "powerdns", Setting: "api_key_file", Problem: BadFile, Err: err}
	}
	key := strings.TrimSpace(string(data))
	if key == "" || strings.ContainsAny(key, "\r\n") {
		// Never quote the file: it holds the key.
		return nil, &SettingError{Provider: "powerdns", Setting: "api_key_file", Problem: BadFile,
			Err: fmt.Errorf("%s: want the API key alone on one line", file)}
	}
	return &powerdns.Provider{APIURL: apiURL, APIKey: key}, nil
}

// Exec is the provider of package exec: a program run for each record.
// Its settings: program (required) and mode: default (PROGRAM
// present|cleanup FQDN VALUE) or raw (lego's EXEC_MODE=RAW).
func Exec() Provider {
	return Provider{
		Name: "exec",
		Help: "your program",
		Settings: []Setting{
			{Name: "program", Help: "the program to run", Required: true},
			{Name: "mode", Help: "default (FQDN VALUE) or raw (-- DOMAIN TOKEN KEYAUTH)"},
		},
		New: newExec,
	}
}

func newExec(s Settings) (dns01.Provider, error) {
	if s["program"] == "" {
		return nil, &SettingError{Provider: "exec", Setting: "program", Problem: Missing, Help: "the program to run"}
	}
	// A program that is not there, or not executable, would otherwise
	// fail only when the CA has asked for the first record.
	if _, err := osexec.LookPath(s["program"]); err != nil {
		return nil, &SettingError{Provider: "exec", Setting: "program", Problem: Invalid, Err: err}
	}
	p := &dnsexec.Provider{Program: s["program"]}
	switch mode := s["mode"]; strings.ToLower(mode) {
	case "", "default":
	case "raw":
		p.Mode = dnsexec.ModeRaw
	default:
		return nil, &SettingError{Provider: "exec", Setting: "mode", Problem: Invalid,
			Err: fmt.Errorf("%q: use default (FQDN VALUE) or raw (-- DOMAIN TOKEN KEYAUTH, lego's EXEC_MODE=RAW)", mode)}
	}
	return p, nil
}
