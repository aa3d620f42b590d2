package lua

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// decodeConf serves POST /decode: the plugin's JSON decoder applied to the
// body, printed back canonically (keys sorted), or "error: ...".
const decodeConf = `
  lua_shared_dict certkeeper 1m;
  init_by_lua_block { require("certkeeper").init({ server = "127.0.0.1:1", shared_dict = "certkeeper" }) }
  server {
    listen 127.0.0.1:%d;
    location /decode {
      content_by_lua_block {
        local ck = require("certkeeper")
        ngx.req.read_body()
        local v, err = ck._json_decode(ngx.req.get_body_data() or "")
        if v == nil then ngx.print("error: ", err) return end
        local function show(x)
          if x == ngx.null then return "null" end
          if type(x) ~= "table" then
            if type(x) == "string" then return string.format("%q", x) end
            return tostring(x)
          end
          local keys, arr = {}, #x > 0
          for k in pairs(x) do keys[#keys + 1] = k end
          if arr then
            local parts = {}
            for i = 1, #x do parts[i] = show(x[i]) end
            return "[" .. table.concat(parts, ",") .. "]"
          end
          table.sort(keys)
          local parts = {}
          for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. show(x[k]) end
          return "{" .. table.concat(parts, ",") .. "}"
        end
        ngx.print(show(v))
      }
    }
  }
`

// TestJSONDecode runs the plugin's JSON decoder inside real nginx on the
// shapes the server's answer takes, and on malformed input.
func TestJSONDecode(t *testing.T) {
	port := testsvc.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	testsvc.Nginx(t, testsvc.NginxOptions{HTTP: strings.Replace(decodeConf, "%d", strconv.Itoa(port), 1), Ready: []string{addr}})
	for _, tt := range []struct{ in, want string }{
		{`{"names":["a.test","b.test"],"ttl_seconds":3600,"self_signed":false}`, `{names=["a.test","b.test"],self_signed=false,ttl_seconds=3600}`},
		{`{"cert":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}`, `{cert="-----BEGIN CERTIFICATE-----\` + "\n" + `MIIB\` + "\n" + `-----END CERTIFICATE-----\` + "\n" + `"}`},
		{`{"a":"\u003c\u0026\u003e \"q\" \\ \/ \t"}`, `{a="<&> \"q\" \\ / \9"}`},
		{`{"u":"\u00e9\u20ac"}`, "{u=\"\u00e9\u20ac\"}"},
		{` { "n" : -1.5e3 , "z" : 0, "x": null, "o": {}, "e": [] } `, `{e={},n=-1500,o={},x=null,z=0}`},
		{`{"not_after":"2026-11-24T12:00:00Z","ocsp_staple":"MIIB+/=="}`, `{not_after="2026-11-24T12:00:00Z",ocsp_staple="MIIB+/=="}`},
		{`{"a":1`, `error:`},
		{`{"a" 1}`, `error:`},
		{`{"a":"unterminated}`, `error:`},
		{`{"a":1} x`, `error: trailing data`},
		{`{"a":"\x"}`, `error: bad escape`},
		{strings.Repeat("[", 50) + strings.Repeat("]", 50), `error: too deep`},
		{``, `error:`},
	} {
		resp, err := http.Post("http://"+addr+"/decode", "application/json", strings.NewReader(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := string(b)
		if strings.HasPrefix(tt.want, "error:") {
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("decode(%q) = %q, want %q...", tt.in, got, tt.want)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("decode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
