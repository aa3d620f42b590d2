package certdeploy

import (
	"encoding/pem"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/certkeeper/certkeeper/storage"
)

// layout returns the files of format for certs, paths relative to dir
// (index files name the certificates by absolute path, so the server's
// working directory does not matter).
func layout(format, dir string, certs []*storage.Certificate) ([]file, error) {
	sorted := append([]*storage.Certificate(nil), certs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Names[0] < sorted[j].Names[0] })
	var files []file
	var index strings.Builder
	var mapped []nginxCert
	for _, c := range sorted {
		if len(c.Names) == 0 {
			return nil, fmt.Errorf("certdeploy: a certificate without names")
		}
		if err := storage.CheckNames(c.Names); err != nil { // they go into the nginx map as they are
			return nil, fmt.Errorf("certdeploy: certificate for %q: %w", c.Names, err)
		}
		seg, err := storage.NameSegment(c.Names[0])
		if err != nil {
			return nil, err
		}
		if c.Variant != "" {
			seg += "_" + c.Variant
		}
		leaf, chain := splitLeaf(c.ChainPEM)
		name := c.Names[0]
		switch format {
		case HAProxy:
			rel := seg + ".pem"
			files = append(files, file{rel: rel, name: name, data: concat(c.ChainPEM, c.KeyPEM)})
			fmt.Fprintf(&index, "%s\n", filepath.Join(dir, rel))
		case PEM:
			files = append(files,
				file{rel: filepath.Join(seg, "cert.pem"), name: name, data: leaf},
				file{rel: filepath.Join(seg, "chain.pem"), name: name, data: chain},
				file{rel: filepath.Join(seg, "fullchain.pem"), name: name, data: c.ChainPEM},
				file{rel: filepath.Join(seg, "privkey.pem"), name: name, data: c.KeyPEM})
		case Nginx:
			full, key := filepath.Join(seg, "fullchain.pem"), filepath.Join(seg, "privkey.pem")
			files = append(files, file{rel: full, name: name, data: c.ChainPEM}, file{rel: key, name: name, data: c.KeyPEM})
			if c.Variant == "" { // nginx picks by name only: the default variant is served
				mapped = append(mapped, nginxCert{c, filepath.Join(dir, full), filepath.Join(dir, key)})
			}
		default:
			return nil, fmt.Errorf("certdeploy: unknown format %q: use %s", format, strings.Join(Formats(), ", "))
		}
	}
	switch format {
	case HAProxy:
		files = append(files, file{rel: "crt-list", data: []byte(index.String())})
	case Nginx:
		files = append(files, file{rel: "certkeeper.conf", data: nginxMaps(mapped)})
	}
	return files, nil
}

// nginxCert is a certificate of the nginx layout and its files' paths.
type nginxCert struct {
	rec       *storage.Certificate
	cert, key string
}

// nginxMaps is the nginx layout's certkeeper.conf: maps from the name a
// client asks for ($ssl_server_name) to a certificate's files, and, for
// certificates of IP addresses, from the address the client connected to
// ($server_addr: a client sends no address as its server name), the name
// maps' default. A name two certificates hold (the same names in another
// order, a name moved to another certificate) maps to the one that expires
// last: nginx refuses a map that has a key twice ("conflicting
// parameter"), and a trial's deployment wrote one that nginx then could
// not reload.
func nginxMaps(certs []nginxCert) []byte {
	byName := map[string]nginxCert{}
	for _, c := range certs {
		for _, n := range c.rec.Names {
			if o, ok := byName[n]; !ok || c.rec.NotAfter.After(o.rec.NotAfter) {
				byName[n] = c
			}
		}
	}
	names := slices.Sorted(maps.Keys(byName))
	var conf, ipCert, ipKey, certMap, keyMap strings.Builder
	conf.WriteString("# Written by certkeeper deploy; include it in the http block and use\n" +
		"#   ssl_certificate $certkeeper_cert; ssl_certificate_key $certkeeper_key;\n")
	for _, n := range names {
		c := byName[n]
		if _, err := netip.ParseAddr(n); err == nil {
			fmt.Fprintf(&ipCert, "\t%s %s;\n", n, c.cert)
			fmt.Fprintf(&ipKey, "\t%s %s;\n", n, c.key)
			continue
		}
		fmt.Fprintf(&certMap, "\t%s %s;\n", mapKey(n), c.cert)
		fmt.Fprintf(&keyMap, "\t%s %s;\n", mapKey(n), c.key)
	}
	head := "\thostnames;\n"
	if ipCert.Len() > 0 {
		conf.WriteString("map $server_addr $certkeeper_ip_cert {\n" + ipCert.String() + "}\n" +
			"map $server_addr $certkeeper_ip_key {\n" + ipKey.String() + "}\n")
		head += "\tdefault $certkeeper_ip_cert;\n"
	}
	conf.WriteString("map $ssl_server_name $certkeeper_cert {\n" + head + certMap.String() + "}\n" +
		"map $ssl_server_name $certkeeper_key {\n" + strings.Replace(head, "_ip_cert", "_ip_key", 1) + keyMap.String() + "}\n")
	return []byte(conf.String())
}

// mapKey is name as a key of an nginx map: a single-label name that is
// one of the map's own parameters (a certificate for "default" would be
// served for every name; one for "include" would make nginx read the
// certificate as configuration) is escaped with "\", which nginx drops;
// a wildcard is a regular expression of one label, as the certificate
// covers (the map's "*.a.example" matches names any depth below it,
// which the certificate does not cover).
func mapKey(name string) string {
	switch name {
	case "default", "hostnames", "include", "volatile":
		return `\` + name
	}
	if zone, ok := strings.CutPrefix(name, "*."); ok {
		return `~^[^.]+\.` + strings.ReplaceAll(zone, ".", `\.`) + `$`
	}
	return name
}

// splitLeaf splits a PEM chain into its leaf and the rest.
func splitLeaf(chain []byte) (leaf, rest []byte) {
	block, r := pem.Decode(chain)
	if block == nil {
		return chain, nil
	}
	return pem.EncodeToMemory(block), []byte(strings.TrimLeft(string(r), "\n"))
}

func concat(a, b []byte) []byte {
	out := append([]byte(nil), a...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, b...)
}
