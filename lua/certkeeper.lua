-- certkeeper.lua: serve certificates from a certkeeper server in
-- nginx/OpenResty, chosen at handshake time by SNI.
--
-- Usage (docs/nginx.md, deploy/nginx/nginx.conf):
--
--   lua_shared_dict certkeeper 10m;
--   init_by_lua_block { require("certkeeper").init({ server = "http://127.0.0.1:8999", token = "TOKEN", shared_dict = "certkeeper" }) }
--   server {
--     listen 443 ssl;
--     ssl_certificate fallback.pem; ssl_certificate_key fallback.key;
--     ssl_certificate_by_lua_block { require("certkeeper").ssl_certificate() }
--   }
--
-- Caching, from the handshake outwards:
--   1. a per-worker LRU (resty.lrucache) of parsed certificates and keys:
--      a hit costs no parsing, no shared memory and no I/O;
--   2. the lua_shared_dict, shared by the workers, holding the PEMs as the
--      server sent them, so one fetch serves every worker;
--   3. the server, GET /v1/certificates/{name}, over a cosocket with a
--      timeout longer than the server's own issuance timeout (30 s), so a
--      first handshake for a new name waits for its issuance.
-- A certificate is fresh for the ttl_seconds the server answered; after
-- that it is still served while one background fetch per name and worker
-- refreshes it, and if the server cannot be reached it keeps being served
-- until it expires (stale-while-error), unless the server refuses it to
-- this client (403) from then on. Refusals (400, 403) and
-- failures are remembered briefly in the shared dict so that a flood of
-- unknown names does not become a flood of requests to the server.
--
-- JSON: the server's answer is a flat object; a small decoder here reads
-- it, so the plugin needs no lua-cjson (OpenResty bundles it, Debian's
-- nginx does not).
--
-- The server's token is sent as "Authorization: Bearer TOKEN" and never
-- logged; neither is any key.
--
-- Transport: the token and the keys cross the connection, so the plugin
-- speaks plain HTTP only to a loopback server (127.0.0.0/8, ::1,
-- localhost) and HTTPS to any other: the server's --api-cert is verified
-- against lua_ssl_trusted_certificate and must carry the DNS name asked
-- for (the URL's host, or tls_server_name), and the plugin may present a
-- client certificate (the server's --client-ca) instead of a token.
--
-- The certificate the server answers must cover the name asked for, both
-- by the names the server states and by the certificate itself (OpenSSL's
-- X509_check_host through LuaJIT's FFI, as nginx checks its upstreams),
-- as certclient's VerifyHostname does: a certificate for other names is
-- never served, cached or stored.

local ssl = require("ngx.ssl")
local ocsp = require("ngx.ocsp")
local lrucache = require("resty.lrucache")
local semaphore = require("ngx.semaphore")
local ffi = require("ffi")

local ngx = ngx
local byte, char, sub, find, lower, match = string.byte, string.char, string.sub, string.find, string.lower, string.match
local tonumber, tostring, type, pcall, concat = tonumber, tostring, type, pcall, table.concat

local _M = { _VERSION = "0.1.0" }

-- Defaults (init's options).
local DEFAULT_LRU_SIZE = 1000
local DEFAULT_TIMEOUT = 40000       -- ms; the server waits up to 30 s for an issuance
local DEFAULT_CONNECT_TIMEOUT = 2000 -- ms
local DEFAULT_ERROR_TTL = 10        -- s a failed fetch is remembered
local DEFAULT_DENIED_TTL = 60       -- s a refusal (400/403) is remembered
local MAX_BODY = 1024 * 1024        -- bytes of an answer
local MAX_HEAD = 16 * 1024          -- bytes of its status line and headers

local conf            -- set by init
local lru             -- name → item; one per worker (init runs before the fork)
local inflight = {}   -- name → semaphore of the fetch in progress, per worker
local current = 1     -- index in conf.servers of the server asked first, per worker
local down_logged = 0 -- when this worker last logged that a server did not answer

local function log(level, ...)
    ngx.log(level, "certkeeper: ", ...)
end

------------------------------------------------------------------------
-- JSON: enough for the server's answer (objects, arrays, strings with
-- escapes, numbers, booleans, null).

local decode_value

local function skip(s, i)
    local _, e = find(s, "^[ \t\r\n]*", i)
    return e + 1
end

local function utf8(cp)
    if cp < 0x80 then return char(cp) end
    if cp < 0x800 then return char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40) end
    return char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function decode_string(s, i)
    -- s[i] is the opening quote
    local out, n = {}, 0
    i = i + 1
    while true do
        local j = find(s, '["\\]', i)
        if not j then return nil, "unterminated string" end
        n = n + 1
        out[n] = sub(s, i, j - 1)
        if byte(s, j) == 34 then -- "
            return concat(out), j + 1
        end
        local c = sub(s, j + 1, j + 1)
        if c == "u" then
            local cp = tonumber(sub(s, j + 2, j + 5), 16)
            if not cp then return nil, "bad \\u escape" end
            n = n + 1
            out[n] = utf8(cp)
            i = j + 6
        else
            local e = escapes[c]
            if not e then return nil, "bad escape" end
            n = n + 1
            out[n] = e
            i = j + 2
        end
    end
end

decode_value = function(s, i, depth)
    if depth > 20 then return nil, "too deep" end
    i = skip(s, i)
    local c = sub(s, i, i)
    if c == "{" then
        local obj = {}
        i = skip(s, i + 1)
        if sub(s, i, i) == "}" then return obj, i + 1 end
        while true do
            if sub(s, i, i) ~= '"' then return nil, "object key expected" end
            local k, v
            k, i = decode_string(s, i)
            if k == nil then return nil, i end
            i = skip(s, i)
            if sub(s, i, i) ~= ":" then return nil, "':' expected" end
            v, i = decode_value(s, i + 1, depth + 1)
            if v == nil then return nil, i end
            obj[k] = v
            i = skip(s, i)
            c = sub(s, i, i)
            if c == "}" then return obj, i + 1 end
            if c ~= "," then return nil, "',' or '}' expected" end
            i = skip(s, i + 1)
        end
    elseif c == "[" then
        local arr, n = {}, 0
        i = skip(s, i + 1)
        if sub(s, i, i) == "]" then return arr, i + 1 end
        while true do
            local v
            v, i = decode_value(s, i, depth + 1)
            if v == nil then return nil, i end
            n = n + 1
            arr[n] = v
            i = skip(s, i)
            c = sub(s, i, i)
            if c == "]" then return arr, i + 1 end
            if c ~= "," then return nil, "',' or ']' expected" end
            i = i + 1
        end
    elseif c == '"' then
        return decode_string(s, i)
    elseif sub(s, i, i + 3) == "true" then
        return true, i + 4
    elseif sub(s, i, i + 4) == "false" then
        return false, i + 5
    elseif sub(s, i, i + 3) == "null" then
        return ngx.null, i + 4
    end
    local _, e = find(s, "^-?[0-9]+%.?[0-9]*[eE]?[-+]?[0-9]*", i)
    if not e then return nil, "unexpected character" end
    return tonumber(sub(s, i, e)), e + 1
end

local function json_decode(s)
    local v, i = decode_value(s, 1, 0)
    if v == nil then return nil, i end
    if skip(s, i) <= #s then return nil, "trailing data" end
    return v
end

------------------------------------------------------------------------
-- Does a certificate cover a name? lua-resty-core has no reader of a
-- certificate's subject alternative names, so the plugin asks OpenSSL,
-- which nginx is linked with, through LuaJIT's FFI: X509_check_host, the
-- matcher nginx itself uses for proxy_ssl_verify and cosockets. Only
-- OpenSSL's stable public API is used, with void pointers, so that a
-- library declaring the same functions with its own types (e.g.
-- lua-resty-openssl) does not clash.

local declared = {
    "void *d2i_X509(void **a, const unsigned char **pp, long length);",
    "void X509_free(void *a);",
    "int X509_check_host(void *x, const char *chk, size_t chklen, unsigned int flags, char **peername);",
    "int X509_check_ip_asc(void *x, const char *address, unsigned int flags);",
}
for _, decl in ipairs(declared) do
    pcall(ffi.cdef, decl) -- already declared by another module: theirs serves
end
local C = ffi.C

-- X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT:
-- a wildcard is a whole left-most label, and the subject's common name
-- never counts (RFC 6125 6.4.4; Go's VerifyHostname, which certclient
-- uses, reads only the subject alternative names too).
local CHECK_FLAGS = 0x4 + 0x20

local der_ptr = ffi.new("const unsigned char *[1]")

-- openssl_missing returns why OpenSSL cannot be reached, or nil.
local function openssl_missing()
    for _, f in ipairs({ "d2i_X509", "X509_free", "X509_check_host", "X509_check_ip_asc" }) do
        local ok = pcall(function() return C[f] end)
        if not ok then return f end
    end
end

local function is_ipv4(name)
    return find(name, "^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- cert_covers reports whether the leaf of the PEM chain covers name (a
-- host name, or an IPv4 address the server also issues for).
local function cert_covers(chain_pem, name)
    local der, err = ssl.cert_pem_to_der(chain_pem)
    if not der then return false, "parsing the certificate: " .. tostring(err) end
    der_ptr[0] = ffi.cast("const unsigned char *", der)
    local x = C.d2i_X509(nil, der_ptr, #der) -- the first certificate: the leaf
    if x == nil then return false, "parsing the certificate: not DER" end
    local rc
    if is_ipv4(name) then
        rc = C.X509_check_ip_asc(x, name, 0)
    else
        rc = C.X509_check_host(x, name, #name, CHECK_FLAGS, nil)
    end
    C.X509_free(x)
    der = nil -- kept alive until here: der_ptr pointed into it
    if rc ~= 1 then return false, "the certificate does not cover " .. name end
    return true
end

-- names_cover reports whether the names the server states (its answer's
-- "names") include name, itself or through a wildcard for its parent.
local function names_cover(names, name)
    if type(names) ~= "table" then return false end
    local parent = match(name, "^[^.]+%.(.+%..+)$")
    for i = 1, #names do
        local n = names[i]
        if type(n) == "string" then
            n = lower(n)
            if n == name or (parent and n == "*." .. parent) then return true end
        end
    end
    return false
end

-- check_answer returns nil when the answer v may be served for name, or
-- why not.
local function check_answer(v, name)
    if not names_cover(v.names, name) then
        local stated = {}
        if type(v.names) == "table" then
            for i = 1, math.min(#v.names, 10) do stated[i] = tostring(v.names[i]) end
        end
        return "the server answered a certificate for other names: it states " ..
            (#stated > 0 and concat(stated, ", ") or "none") .. ", not " .. name
    end
    local ok, err = cert_covers(v.cert, name)
    if not ok then
        return "the server answered a certificate for other names: " .. err
    end
end

------------------------------------------------------------------------
-- Fetching from the server.

-- valid_name reports whether name can be a hostname the server may have
-- a certificate for; anything else is never sent to it.
local function valid_name(name)
    return #name > 0 and #name <= 253 and not find(name, "[^a-z0-9.-]") and not find(name, "%.%.")
        and byte(name, 1) ~= 46 and byte(name, -1) ~= 46
end

local VERIFY_HINT = "lua_ssl_trusted_certificate, in the http block, must hold the CA of the server's" ..
    " --api-cert, and lua_ssl_verify_depth be deep enough for its chain"

-- handshake makes sock, connected to server srv, a TLS connection: the
-- server's certificate verified against lua_ssl_trusted_certificate and
-- for srv.tls_server_name (also sent as SNI), the client certificate
-- presented if there is one. It returns nil, or why it failed.
local function handshake(sock, srv)
    if conf.client_cert then
        local ok, err = sock:setclientcert(conf.client_cert, conf.client_key)
        if not ok then return "setting the client certificate: " .. tostring(err) end
    end
    -- reused_session is nil, not false. A handshake can complete within
    -- the first call (on loopback it often does); lua-resty-core 0.1.25
    -- then returns true for false without reading the verification
    -- result, whereas for nil it reads it and, when verification failed,
    -- raises an error (an assertion), which pcall turns into a failure.
    local called, sess, err = pcall(sock.sslhandshake, sock, nil, srv.tls_server_name, true)
    if not called then
        return "the server's certificate was refused: nginx's \"lua ssl\" error just before says why (" ..
            VERIFY_HINT .. "; lua-resty-core: " .. tostring(sess) .. ")"
    end
    if sess == nil and err ~= nil then
        err = tostring(err)
        if err == "certificate host mismatch" then
            return err .. ": the server's certificate must carry the DNS name " .. srv.tls_server_name ..
                " (set init's tls_server_name to one it carries)"
        elseif find(err, "^%d+: ") then -- an X.509 verification error
            return err .. " (" .. VERIFY_HINT .. ")"
        elseif err == "handshake failed" then
            return err .. " (does the server speak HTTPS there? Without --api-cert, certkeeper server's" ..
                " --listen is plain HTTP: give init an http:// server, on loopback only)"
        end
        return err
    end
end

-- connect_hint is what to check when connecting to the server failed
-- with err.
local function connect_hint(err)
    err = tostring(err)
    if find(err, "no resolver defined", 1, true) then
        return " (add resolver ADDR; to the http block, or give init's server by IP address with" ..
            " tls_server_name set to a DNS name of the server's certificate)"
    elseif err == "connection refused" or err == "timeout" then
        return " (is certkeeper server running, with --listen on this address? init's server says where" ..
            " to fetch from)"
    end
    return ""
end

-- http_get fetches path from server srv: status, headers (lower-case
-- names), body. HTTP/1.0, so the body ends with the connection.
local function http_get(srv, path)
    local sock = ngx.socket.tcp()
    sock:settimeouts(conf.connect_timeout, conf.timeout, conf.timeout)
    local ok, err = sock:connect(srv.connect_host, srv.port)
    if not ok then return nil, "connecting to " .. srv.url .. ": " .. tostring(err) .. connect_hint(err) end
    if srv.tls then
        err = handshake(sock, srv)
        if err then
            sock:close()
            return nil, "TLS handshake with " .. srv.url .. " (" .. srv.tls_server_name .. "): " .. err
        end
    end
    local req = "GET " .. path .. " HTTP/1.0\r\nHost: " .. srv.host_header ..
        "\r\nUser-Agent: certkeeper-lua/" .. _M._VERSION .. "\r\n"
    if conf.token then req = req .. "Authorization: Bearer " .. conf.token .. "\r\n" end
    ok, err = sock:send(req .. "\r\n")
    if not ok then sock:close(); return nil, "sending request: " .. tostring(err) end
    -- One deadline for the whole answer (init's timeout), each read given
    -- what is left of it: a server sending a byte at a time held the
    -- handshake as long as it liked. The status line and headers are read
    -- in chunks, at most MAX_HEAD bytes of them, not a line at a time
    -- (receive("*l") keeps a line of any length).
    local deadline = ngx.now() + conf.timeout / 1000
    local function read()
        local left = math.floor((deadline - ngx.now()) * 1000)
        if left < 1 then return nil, "timeout" end
        sock:settimeout(left)
        return sock:receiveany(8192)
    end
    local head, body = "", nil
    while not body do
        local data, rerr = read()
        if not data then
            sock:close()
            if rerr == "timeout" then
                rerr = "timeout (init's timeout is " .. conf.timeout .. " ms: a first issuance may take longer," ..
                    " and the server goes on, so a later handshake gets the certificate; or the server accepts" ..
                    " connections but does not answer: is it stopped or overloaded?)"
            end
            return nil, "reading the answer from " .. srv.url .. ": " .. tostring(rerr)
        end
        head = head .. data
        local e = find(head, "\r\n\r\n", 1, true)
        if e then
            head, body = sub(head, 1, e + 1), sub(head, e + 4)
        elseif #head > MAX_HEAD then
            sock:close()
            return nil, "the answer's headers are over " .. MAX_HEAD .. " bytes"
        end
    end
    local status = tonumber(sub(head, 10, 12))
    if not status or sub(head, 1, 5) ~= "HTTP/" then sock:close(); return nil, "bad status line" end
    local headers = {}
    for line in head:gmatch("([^\r\n]*)\r\n") do
        local k, v = line:match("^([^:]+):%s*(.-)%s*$")
        if k then headers[lower(k)] = v end
    end
    local parts, size = { body }, #body
    if size > MAX_BODY then sock:close(); return nil, "answer over " .. MAX_BODY .. " bytes" end
    while true do
        local data, rerr = read()
        if data and #data > 0 then
            size = size + #data
            if size > MAX_BODY then sock:close(); return nil, "answer over " .. MAX_BODY .. " bytes" end
            parts[#parts + 1] = data
        end
        if rerr == "closed" then break end
        if rerr then sock:close(); return nil, "reading body: " .. tostring(rerr) end
    end
    sock:close()
    return status, headers, concat(parts)
end

-- Shared dict records: "c:NAME" holds a fetched certificate as
-- fresh_until NUL not_after NUL staple(base64) NUL chain PEM NUL key PEM;
-- "n:NAME" marks a refused or failed name for a while (its value: the
-- generation of the configuration that saw it fail, see failed); "r:NAME"
-- marks a name whose certificate was held and is now refused to this
-- client (403), so no worker serves its copy any more.
local SEP = "\0"

local function encode_record(fresh_until, not_after, staple_b64, cert, key)
    return concat({ tostring(fresh_until), tostring(not_after), staple_b64 or "", cert, key }, SEP)
end

local function decode_record(s)
    local f = {}
    local i = 1
    for _ = 1, 4 do
        local j = find(s, SEP, i, true)
        if not j then return nil end
        f[#f + 1] = sub(s, i, j - 1)
        i = j + 1
    end
    f[5] = sub(s, i)
    return { fresh_until = tonumber(f[1]), not_after = tonumber(f[2]), staple = f[3], cert = f[4], key = f[5] }
end

-- parse_time reads the RFC 3339 not_after the server sends (UTC, "Z").
local function parse_time(s)
    if type(s) ~= "string" then return nil end
    local y, mo, d, h, mi, se = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
    if not y then return nil end
    -- days from civil (Howard Hinnant), in UTC
    y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
    if mo <= 2 then y = y - 1 end
    local era = math.floor(y / 400)
    local yoe = y - era * 400
    local mp = (mo + 9) % 12
    local doy = math.floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
    local days = era * 146097 + doe - 719468
    local t = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(se)
    local sign, oh, om = s:match("([+-])(%d%d):(%d%d)$")
    if sign then
        local off = tonumber(oh) * 3600 + tonumber(om) * 60
        t = sign == "+" and t - off or t + off
    end
    return t
end

-- answer_text is ": " and the first line of an error answer's body, for
-- the log: the server says why in plain text ("the bearer token was not
-- accepted ...", "no certificate for NAME yet: the CA cannot be reached");
-- the page of something else at the server's address is cut short.
local function answer_text(body)
    if type(body) ~= "string" then return "" end
    local line = (body:match("^[^\r\n]*") or ""):gsub("%c", "?")
    if #line > 200 then line = line:sub(1, 200) .. "..." end
    if line == "" then return "" end
    return ": " .. line
end

-- ask asks the servers for path, from the one that answered last: the
-- next when one cannot be reached or answers with a 5xx (init's
-- fallbacks). It returns what http_get returns for the server that
-- answered; if none did below 500, for the first that answered at all
-- (its 503 says why, storage down say, and when to retry), else for the
-- last one asked.
local function ask(path)
    local n = #conf.servers
    local first = current
    local status, headers, body, why
    local answered -- the first 5xx answer: {status, headers, body}
    for i = 0, n - 1 do
        local at = (first + i - 1) % n + 1
        status, headers, body = http_get(conf.servers[at], path)
        if status and not answered then answered = { status, headers, body } end
        if status and status < 500 then
            if at ~= first then
                current = at
                if ngx.now() - down_logged >= 60 then
                    down_logged = ngx.now()
                    log(ngx.WARN, "certificate server did not answer; another one did: ", conf.servers[first].url,
                        ": ", why, "; answered: ", conf.servers[at].url, " (logged at most once a minute per worker)")
                end
            end
            return status, headers, body
        end
        why = why or (status and ("answered " .. status) or headers)
    end
    if answered and not status then
        return answered[1], answered[2], answered[3]
    end
    return status, headers, body
end

-- fetch asks the servers for name and stores the answer in the shared
-- dict. It returns the record, or nil and an error.
local function fetch(name)
    local dict = ngx.shared[conf.shared_dict]
    local status, headers, body = ask("/v1/certificates/" .. name)
    if not status then
        -- The server cannot be reached: an error, so that it shows at
        -- nginx's default error_log level.
        dict:set("n:" .. name, conf.generation, conf.error_ttl)
        return nil, headers, ngx.ERR
    end
    if status ~= 200 then
        -- A name refused (400, 403) or not ready yet (503) is the
        -- server's answer about that name: a warning. Anything else (401:
        -- the token; a redirect, a 404 or another error page: not
        -- certkeeper's API at that address, which never answers 404 to
        -- /v1/certificates/NAME; the 400 Go's TLS listener answers plain
        -- HTTP with) is the configuration's: an error.
        local ttl, level, hint = conf.error_ttl, ngx.ERR, ""
        if status == 400 and find(body or "", "^Client sent an HTTP request to an HTTPS server") then
            hint = " (the server's --listen speaks HTTPS, with --api-cert: give init an https:// server," ..
                " and nginx its CA in lua_ssl_trusted_certificate)"
        elseif status == 400 or status == 403 then
            ttl, level = conf.denied_ttl, ngx.WARN
            if status == 403 and dict:get("c:" .. name) then
                -- A name held and now refused to this client (its token's
                -- names= changed): no longer served, not even stale, as
                -- the server may have revoked and replaced it meanwhile.
                dict:delete("c:" .. name)
                dict:set("r:" .. name, true)
                hint = " (the certificate held for it is no longer served)"
            end
        elseif status == 503 then
            local ra = tonumber(headers["retry-after"] or "")
            if ra then ttl = math.max(1, math.min(ra, 60)) end
            level = ngx.WARN
        elseif status == 401 then
            hint = " (init's token must be a line of the server's --token-file, or its client_cert issued by" ..
                " a CA of the server's --client-ca)"
        else
            hint = " (is init's server the address certkeeper server listens on, --listen?)"
        end
        dict:set("n:" .. name, conf.generation, ttl)
        return nil, "server answered " .. status .. answer_text(body) .. hint, level
    end
    local v, err = json_decode(body)
    if type(v) ~= "table" or type(v.cert) ~= "string" or type(v.key) ~= "string" then
        dict:set("n:" .. name, conf.generation, conf.error_ttl)
        return nil, "bad answer from the server: " .. tostring(err or "fields missing")
    end
    err = check_answer(v, name)
    if not err and (find(v.cert, SEP, 1, true) or find(v.key, SEP, 1, true)) then
        -- The record kept in the shared dict separates its fields with
        -- NUL: one in a field would shift the others, and a certificate
        -- never checked would be served from it.
        err = "bad answer from the server: a NUL byte in its certificate or key"
    end
    if err then
        dict:set("n:" .. name, conf.generation, conf.error_ttl)
        return nil, err, ngx.ERR
    end
    local staple = type(v.ocsp_staple) == "string" and v.ocsp_staple or ""
    if find(staple, "[^A-Za-z0-9+/=]") then -- not base64, NUL included
        log(ngx.WARN, "fetching ", name, ": the server's OCSP staple is not base64; not stapling it")
        staple = ""
    end
    local now = ngx.time()
    local not_after = parse_time(v.not_after) or (now + 3600)
    local ttl = tonumber(v.ttl_seconds) or 60
    if ttl < 1 then ttl = 1 end
    local rec = {
        fresh_until = now + ttl, not_after = not_after,
        staple = staple, cert = v.cert, key = v.key,
    }
    local keep = not_after - now
    if keep > 0 then
        local ok, serr, forcible = dict:set("c:" .. name, encode_record(rec.fresh_until, rec.not_after, rec.staple, rec.cert, rec.key), keep)
        if not ok then
            log(ngx.WARN, "storing ", name, " in lua_shared_dict ", conf.shared_dict, ": ", serr,
                serr == "no memory" and " (too small for one certificate: give it more, e.g. lua_shared_dict "
                    .. conf.shared_dict .. " 10m;)" or "")
        elseif forcible then
            log(ngx.WARN, "lua_shared_dict ", conf.shared_dict, " is full; older certificates were evicted")
        end
        dict:delete("n:" .. name)
        dict:delete("r:" .. name)
    end
    return rec
end

-- fetch_once fetches name unless this worker already is; a concurrent
-- caller waits for that fetch (up to the timeout) and reads its result
-- from the shared dict.
local function fetch_once(name)
    local sema = inflight[name]
    if sema then
        sema:wait(conf.timeout / 1000)
        local s = ngx.shared[conf.shared_dict]:get("c:" .. name)
        return s and decode_record(s)
    end
    sema = semaphore.new()
    inflight[name] = sema
    local ok, rec, err, level = pcall(fetch, name)
    inflight[name] = nil
    local waiting = -sema:count() -- a negative count is the number of waiters
    if waiting > 0 then sema:post(waiting) end
    if not ok then
        log(ngx.ERR, "fetching ", name, ": ", rec)
        return nil
    end
    if not rec then
        log(level or ngx.WARN, "fetching ", name, ": ", err)
    end
    return rec
end

local pending = {} -- name → true while a background refresh is scheduled, per worker

-- failed reports whether name was refused or failed just now ("n:NAME",
-- kept for denied_ttl or error_ttl) under this configuration: the record
-- holds the generation of the configuration that wrote it. A reload
-- (nginx -s reload runs init again) may have fixed what made names fail
-- (a token, the server's address), so the new workers ask again at once,
-- whatever the old ones, still draining, write meanwhile.
local function failed(dict, name)
    return dict:get("n:" .. name) == conf.generation
end

-- refresh fetches a stale certificate again, from a timer; the next
-- handshake finds the new one in the shared dict.
local function refresh(premature, name)
    if not premature then
        fetch_once(name)
    end
    pending[name] = nil
end

local function refresh_later(name, dict)
    if pending[name] or inflight[name] or failed(dict, name) then return end
    local ok, err = ngx.timer.at(0, refresh, name)
    if ok then
        pending[name] = true
    else
        log(ngx.WARN, "scheduling a refresh of ", name, ": ", err)
    end
end

------------------------------------------------------------------------
-- Items in the per-worker LRU: parsed, ready for ngx.ssl.

local function make_item(rec, raw)
    local chain, err = ssl.parse_pem_cert(rec.cert)
    if not chain then return nil, "parsing certificate: " .. tostring(err) end
    local key
    key, err = ssl.parse_pem_priv_key(rec.key)
    if not key then return nil, "parsing key: " .. tostring(err) end
    local item = { chain = chain, key = key, fresh_until = rec.fresh_until, not_after = rec.not_after, raw = raw }
    if rec.staple ~= "" then
        local der = ngx.decode_base64(rec.staple)
        local der_chain = der and ssl.cert_pem_to_der(rec.cert)
        local ok
        if der_chain then
            ok, err = ocsp.validate_ocsp_response(der, der_chain)
        end
        if ok then
            item.staple = der
        else
            log(ngx.WARN, "not stapling the OCSP response received: ", tostring(err))
        end
    end
    return item
end

-- get_item returns the parsed certificate for name, or nil (the
-- fallback is served).
local function get_item(name)
    local now = ngx.time()
    local it = lru:get(name)
    if it and now < it.fresh_until then
        return it -- the hot path: no parsing, no shared memory, no I/O
    end
    local dict = ngx.shared[conf.shared_dict]
    local raw = dict:get("c:" .. name)
    if raw and (not it or raw ~= it.raw) then
        -- Fetched by another worker, or by a refresh: parse that one.
        local rec = decode_record(raw)
        local item, err
        if rec then item, err = make_item(rec, raw) end
        if item then
            lru:set(name, item)
            it = item
        else
            log(ngx.ERR, "stored certificate for ", name, ": ", tostring(err))
        end
    end
    if it and not raw and dict:get("r:" .. name) then
        -- Refused to this client since it was fetched (fetch, 403).
        lru:delete(name)
        it = nil
    end
    if it then
        if now < it.fresh_until then return it end
        if now < it.not_after then
            -- Stale: served while one background fetch refreshes it, and
            -- for as long as the server cannot be reached.
            refresh_later(name, dict)
            return it
        end
        lru:delete(name)
    end
    -- Nothing to serve: the handshake waits for the server.
    if failed(dict, name) then return nil end -- refused or failing just now
    if conf.allow_domain and not conf.allow_domain(name) then
        dict:set("n:" .. name, conf.generation, conf.denied_ttl)
        return nil
    end
    local rec = fetch_once(name)
    if not rec then return nil end
    local item, err = make_item(rec, dict:get("c:" .. name))
    if not item then
        log(ngx.ERR, "certificate for ", name, ": ", err)
        return nil
    end
    lru:set(name, item)
    return item
end

------------------------------------------------------------------------
-- The API.

-- is_loopback reports whether host (a URL's host, without brackets) is
-- a loopback address or localhost.
local function is_loopback(host)
    if host == "localhost" or host == "::1" then return true end
    local a, b, c, d = match(host, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    return a ~= nil and tonumber(a) == 127 and tonumber(b) <= 255 and tonumber(c) <= 255 and tonumber(d) <= 255
end

-- parse_server reads init's server option: "https://HOST[:PORT]",
-- "http://HOST[:PORT]" or the older "HOST:PORT" (plain HTTP). It returns
-- a table, or nil and what is wrong.
local function parse_server(server)
    local scheme, rest = match(server, "^(%a[%w+.-]*)://(.*)$")
    local bare = scheme == nil
    if bare then
        scheme, rest = "http", server
    end
    scheme = lower(scheme)
    if scheme ~= "https" and scheme ~= "http" then
        return nil, "want https://HOST:PORT (or http://HOST:PORT to a loopback server)"
    end
    rest = rest:gsub("/$", "")
    local host, port
    if sub(rest, 1, 1) == "[" then
        host, port = match(rest, "^%[([%x:.]+)%]:?(%d*)$")
    else
        host, port = match(rest, "^([%w.-]+):?(%d*)$")
    end
    if not host then
        return nil, "want " .. scheme .. "://HOST:PORT, with no path, user or query"
    end
    host = lower(host)
    if port == "" then
        if bare then return nil, "want https://HOST:PORT (or HOST:PORT for plain HTTP to a loopback server)" end
        port = scheme == "https" and "443" or "80"
    end
    port = tonumber(port)
    if port < 1 or port > 65535 then return nil, "port out of range" end
    local v6 = find(host, ":", 1, true) ~= nil
    local hostport = (v6 and "[" .. host .. "]" or host) .. ":" .. port
    local s = {
        url = scheme .. "://" .. hostport, host_header = hostport, port = port, tls = scheme == "https",
        host = host, ip = v6 or is_ipv4(host),
        -- localhost is never resolved: plain HTTP must reach this machine.
        connect_host = host == "localhost" and "127.0.0.1" or (v6 and "[" .. host .. "]" or host),
    }
    if not s.tls and not is_loopback(host) then
        return nil, "plain HTTP would carry the token and private keys in clear, so it is allowed only to a" ..
            " loopback server (127.0.0.0/8, ::1, localhost); use https:// with the server's --api-cert" ..
            " and nginx's lua_ssl_trusted_certificate (docs/nginx.md)"
    end
    return s
end

-- read_file returns the contents of path, or nil and an error.
local function read_file(path)
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local data = f:read("*a")
    f:close()
    return data
end

-- client_certificate reads and parses init's client_cert and client_key.
local function client_certificate(opts, tls)
    local certfile, keyfile = opts.client_cert, opts.client_key
    if certfile == nil and keyfile == nil then return nil end
    if type(certfile) ~= "string" or type(keyfile) ~= "string" then
        error("certkeeper.init: client_cert and client_key go together: give both (PEM files) or neither", 3)
    end
    if not tls then
        error("certkeeper.init: client_cert needs an https:// server (client certificates travel in TLS: the" ..
            " server's --api-cert with --client-ca)", 3)
    end
    local mt = debug.getregistry().__tcp_cosocket_mt
    if not (mt and mt.setclientcert) then
        error("certkeeper.init: client_cert: this nginx has no tcpsock:setclientcert (it needs lua-nginx-module" ..
            " 0.10.23 and lua-resty-core 0.1.25 or later); upgrade them, or authenticate with token", 3)
    end
    local pem, err = read_file(certfile)
    if not pem then error("certkeeper.init: client_cert: reading " .. certfile .. ": " .. tostring(err), 3) end
    local cert
    cert, err = ssl.parse_pem_cert(pem)
    if not cert then error("certkeeper.init: client_cert: " .. certfile .. ": " .. tostring(err), 3) end
    pem, err = read_file(keyfile)
    if not pem then error("certkeeper.init: client_key: reading " .. keyfile .. ": " .. tostring(err), 3) end
    local key
    key, err = ssl.parse_pem_priv_key(pem)
    if not key then error("certkeeper.init: client_key: " .. keyfile .. ": " .. tostring(err), 3) end
    return cert, key
end

-- OPTIONS are init's options, in the order docs/nginx.md lists them.
local OPTIONS = { "server", "fallbacks", "tls_server_name", "token", "client_cert", "client_key", "shared_dict", "lru_size",
    "timeout", "connect_timeout", "allow_domain", "denied_ttl", "error_ttl" }
-- COUNTS are the options that are numbers (ms, s or entries), at least 1.
local COUNTS = { lru_size = true, timeout = true, connect_timeout = true, denied_ttl = true, error_ttl = true }

-- check_options refuses an option init does not know (a typo would
-- otherwise be ignored, and its default used without a word) and a
-- count that is not a positive number (it would fail at every handshake).
local function check_options(opts)
    local known = {}
    for _, k in ipairs(OPTIONS) do known[k] = true end
    for k, v in pairs(opts) do
        if not known[k] then
            error(("certkeeper.init: unknown option %s (the options: %s)"):format(tostring(k), concat(OPTIONS, ", ")), 3)
        end
        if COUNTS[k] and (type(v) ~= "number" or v < 1) then
            error(("certkeeper.init: %s = %s: want a number, at least 1 (%s)"):format(k, tostring(v),
                (k == "timeout" or k == "connect_timeout") and "milliseconds" or
                k == "lru_size" and "certificates" or "seconds"), 3)
        end
    end
end

-- server_setting parses a server URL given as option what (server, or
-- fallbacks[i]) and sets the DNS name its certificate must carry: name
-- (tls_server_name) or its host. It raises the error init reports.
local function server_setting(what, url, name)
    local srv, why = parse_server(url)
    if not srv then error(("certkeeper.init: %s = %q: %s"):format(what, url, why), 3) end
    if name ~= nil then
        if not srv.tls then error(("certkeeper.init: tls_server_name needs an https:// %s"):format(what), 3) end
        srv.tls_server_name = lower(name)
    elseif srv.tls then
        if srv.ip then
            error(("certkeeper.init: %s = %q: nginx checks the server's certificate against a DNS name only, not" ..
                " an IP address; set tls_server_name = \"NAME\" to a DNS name of the server's --api-cert" ..
                " certificate, or use https://NAME:PORT (with nginx's resolver)"):format(what, url), 3)
        end
        srv.tls_server_name = srv.host
    end
    return srv
end

-- init configures the plugin; call it from init_by_lua (nginx -t does
-- not run it: a wrong option shows when nginx starts or reloads).
-- Options:
--   server          the certkeeper server (required): "https://HOST:PORT",
--                   verified against lua_ssl_trusted_certificate; or
--                   "http://HOST:PORT" (or the older "HOST:PORT") to a
--                   loopback server only (127.0.0.0/8, ::1, localhost)
--   fallbacks       more servers on the same storage, a list of URLs as
--                   server's: asked in turn when one cannot be reached or
--                   answers with a 5xx; the one that answered is asked
--                   first from then on
--   tls_server_name the DNS name the server's certificate must carry, also
--                   sent as SNI (default: the host of an https:// server;
--                   required when that host is an IP address, as nginx
--                   checks certificates by DNS name only)
--   token           bearer token for the server
--   client_cert     PEM file of a client certificate for the server's
--   client_key      --client-ca, and its key (https:// only; read at init,
--                   before nginx drops root)
--   shared_dict     name of a lua_shared_dict (required)
--   lru_size        certificates parsed and kept per worker (1000)
--   timeout         ms to wait for the server's answer (40000: longer
--                   than the server's 30 s wait for a first issuance)
--   connect_timeout ms to connect to the server, and for the TLS handshake
--                   (2000)
--   allow_domain    function(name) returning true for names that may be
--                   fetched; others get the fallback without any request
--   denied_ttl      s a refused name is not asked again (60)
--   error_ttl       s a failing name is not asked again (10)
function _M.init(opts)
    if type(opts) ~= "table" then error("certkeeper.init: options table required", 2) end
    check_options(opts)
    local server = opts.server
    if type(server) ~= "string" then
        error("certkeeper.init: server (\"https://HOST:PORT\", or \"http://127.0.0.1:PORT\") required", 2)
    end
    local name = opts.tls_server_name
    if name ~= nil and (type(name) ~= "string" or not find(name, "^[%w.-]+$") or is_ipv4(name)) then
        error("certkeeper.init: tls_server_name must be a DNS name (of the server's --api-cert certificate)", 2)
    end
    local srv = server_setting("server", server, name)
    local fallbacks = opts.fallbacks
    if fallbacks ~= nil and (type(fallbacks) ~= "table" or #fallbacks == 0) then
        error("certkeeper.init: fallbacks must be a list of server URLs, e.g. fallbacks = { \"https://b.internal:8999\" }", 2)
    end
    srv.servers = { srv }
    for i, url in ipairs(fallbacks or {}) do
        if type(url) ~= "string" then error(("certkeeper.init: fallbacks[%d] must be a URL string"):format(i), 2) end
        srv.servers[#srv.servers + 1] = server_setting(("fallbacks[%d]"):format(i), url, name)
    end
    if type(opts.shared_dict) ~= "string" then
        error("certkeeper.init: shared_dict must name a lua_shared_dict, e.g. shared_dict = \"certkeeper\"" ..
            " with lua_shared_dict certkeeper 10m; in the http block", 2)
    end
    if not ngx.shared[opts.shared_dict] then
        error(("certkeeper.init: shared_dict %q names no lua_shared_dict: add lua_shared_dict %s 10m; to the" ..
            " http block (about 4 KiB per certificate)"):format(opts.shared_dict, opts.shared_dict), 2)
    end
    if opts.allow_domain ~= nil and type(opts.allow_domain) ~= "function" then
        error("certkeeper.init: allow_domain must be a function", 2)
    end
    local missing = openssl_missing()
    if missing then
        error("certkeeper.init: OpenSSL's " .. missing .. " is not reachable through LuaJIT's FFI in this nginx" ..
            " (OpenSSL linked statically?); the plugin needs it to check that a certificate covers its name", 2)
    end
    local any_tls = false
    for _, s in ipairs(srv.servers) do any_tls = any_tls or s.tls end
    local client_cert, client_key = client_certificate(opts, any_tls)
    local size = opts.lru_size or DEFAULT_LRU_SIZE
    local err
    lru, err = lrucache.new(size)
    if not lru then error("certkeeper.init: lrucache: " .. tostring(err), 2) end
    srv.token, srv.client_cert, srv.client_key = opts.token, client_cert, client_key
    srv.shared_dict, srv.allow_domain = opts.shared_dict, opts.allow_domain
    srv.timeout = opts.timeout or DEFAULT_TIMEOUT
    srv.connect_timeout = opts.connect_timeout or DEFAULT_CONNECT_TIMEOUT
    srv.denied_ttl, srv.error_ttl = opts.denied_ttl or DEFAULT_DENIED_TTL, opts.error_ttl or DEFAULT_ERROR_TTL
    -- Each init (nginx start or reload) is a new generation of the
    -- configuration; see failed.
    local gen
    gen, err = ngx.shared[opts.shared_dict]:incr("generation", 1, 0)
    if not gen then error("certkeeper.init: lua_shared_dict " .. opts.shared_dict .. ": " .. tostring(err), 2) end
    srv.generation = gen
    conf = srv
    current = 1
end

-- ssl_certificate sets the certificate, key and OCSP staple for the
-- handshake's server name; call it from ssl_certificate_by_lua. Without
-- a certificate for the name it leaves nginx's own (the fallback).
function _M.ssl_certificate()
    if not conf then
        log(ngx.ERR, "ssl_certificate called before init")
        return
    end
    local name = ssl.server_name()
    if not name then return end
    name = lower(name)
    local it = lru:get(name)
    if not it or ngx.time() >= it.fresh_until then
        if byte(name, -1) == 46 then name = sub(name, 1, -2) end -- "a.test." is "a.test"
        if not valid_name(name) then return end
        it = get_item(name)
        if not it then return end
    end
    local ok, err = ssl.clear_certs()
    if ok then ok, err = ssl.set_cert(it.chain) end
    if ok then ok, err = ssl.set_priv_key(it.key) end
    if not ok then
        log(ngx.ERR, "setting the certificate for ", name, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
    if it.staple then
        ok, err = ocsp.set_ocsp_status_resp(it.staple)
        if not ok then log(ngx.WARN, "stapling for ", name, ": ", err) end
    end
end

-- _json_decode is exported for tests.
_M._json_decode = json_decode

return _M
