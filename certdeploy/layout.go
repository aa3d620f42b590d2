package certdeploy

import (
	"encoding/pem"
	"fmt"
	"path/filepath"
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
	var certMap, keyMap strings.Builder
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
			if c.Variant != "" {
				continue // nginx picks by name only: the default variant is served
			}
			for _, n := range c.Names {
				fmt.Fprintf(&certMap, "\t%s %s;\n", mapKey(n), filepath.Join(dir, full))
				fmt.Fprintf(&keyMap, "\t%s %s;\n", mapKey(n), filepath.Join(dir, key))
			}
		default:
			return nil, fmt.Errorf("certdeploy: unknown format %q: use %s", format, strings.Join(Formats(), ", "))
		}
	}
	switch format {
	case HAProxy:
		files = append(files, file{rel: "crt-list", data: []byte(index.String())})
	case Nginx:
		conf := "# Written by certkeeper deploy; include it in the http block and use\n" +
			"#   ssl_certificate $certkeeper_cert; ssl_certificate_key $certkeeper_key;\n" +
			"map $ssl_server_name $certkeeper_cert {\n\thostnames;\n" + certMap.String() + "}\n" +
			"map $ssl_server_name $certkeeper_key {\n\thostnames;\n" + keyMap.String() + "}\n"
		files = append(files, file{rel: "certkeeper.conf", data: []byte(conf)})
	}
	return files, nil
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
