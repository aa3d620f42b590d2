-- certkeeper.lua: serve certificates from a certkeeper server in
-- nginx/OpenResty, chosen at handshake time by SNI.
--
-- Usage (docs/nginx.md, deploy/nginx/nginx.conf):
--
--   lua_shared_dict certkeeper 10m;
--   init_by_lua_block { require("certkeeper").init({ server = "127.0.0.1:8999", token = "TOKEN", shared_dict = "certkeeper" }) }
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
-- until it expires (stale-while-error). Refusals (400, 403, 404) and
-- failures are remembered briefly in the shared dict so that a flood of
-- unknown names does not become a flood of requests to the server.
--
-- JSON: the server's answer is a flat object; a small decoder here reads
-- it, so the plugin needs no lua-cjson (OpenResty bundles it, Debian's
-- nginx does not).
--
-- The server's token is sent as "Authorization: Bearer TOKEN" and never
-- logged; neither is any key.

local ssl = require("ngx.ssl")
local ocsp = require("ngx.ocsp")
local lrucache = require("resty.lrucache")
local semaphore = require("ngx.semaphore")

local ngx = ngx
local byte, char, sub, find, lower, format = string.byte, string.char, string.sub, string.find, string.lower, string.format
local tonumber, tostring, type, pcall, concat = tonumber, tostring, type, pcall, table.concat

local _M = { _VERSION = "0.1.0" }

-- Defaults (init's options).
local DEFAULT_LRU_SIZE = 1000
local DEFAULT_TIMEOUT = 40000       -- ms; the server waits up to 30 s for an issuance
local DEFAULT_CONNECT_TIMEOUT = 2000 -- ms
local DEFAULT_ERROR_TTL = 10        -- s a failed fetch is remembered
local DEFAULT_DENIED_TTL = 60       -- s a refusal (400/403/404) is remembered
local MAX_BODY = 1024 * 1024        -- bytes of an answer

local conf            -- set by init
local lru             -- name → item; one per worker (init runs before the fork)
local inflight = {}   -- name → semaphore of the fetch in progress, per worker

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
-- Fetching from the server.

-- valid_name reports whether name can be a hostname the server may have
-- a certificate for; anything else is never sent to it.
local function valid_name(name)
    return #name > 0 and #name <= 253 and not find(name, "[^a-z0-9.-]") and not find(name, "%.%.")
        and byte(name, 1) ~= 46 and byte(name, -1) ~= 46
end

-- http_get fetches path from the server: status, headers (lower-case
-- names), body. HTTP/1.0, so the body ends with the connection.
local function http_get(path)
    local sock = ngx.socket.tcp()
    sock:settimeouts(conf.connect_timeout, conf.timeout, conf.timeout)
    local ok, err = sock:connect(conf.host, conf.port)
    if not ok then return nil, "connecting to " .. conf.server .. ": " .. tostring(err) end
    local req = "GET " .. path .. " HTTP/1.0\r\nHost: " .. conf.server ..
        "\r\nUser-Agent: certkeeper-lua/" .. _M._VERSION .. "\r\n"
    if conf.token then req = req .. "Authorization: Bearer " .. conf.token .. "\r\n" end
    ok, err = sock:send(req .. "\r\n")
    if not ok then sock:close(); return nil, "sending request: " .. tostring(err) end
    local line
    line, err = sock:receive("*l")
    if not line then sock:close(); return nil, "reading status: " .. tostring(err) end
    local status = tonumber(sub(line, 10, 12))
    if not status then sock:close(); return nil, "bad status line" end
    local headers = {}
    while true do
        line, err = sock:receive("*l")
        if not line then sock:close(); return nil, "reading headers: " .. tostring(err) end
        if line == "" then break end
        local k, v = line:match("^([^:]+):%s*(.-)%s*$")
        if k then headers[lower(k)] = v end
    end
    local parts, size = {}, 0
    while true do
        local data, rerr, partial = sock:receive(8192)
        data = data or partial
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
-- "n:NAME" marks a refused or failed name for a while.
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

-- fetch asks the server for name and stores the answer in the shared
-- dict. It returns the record, or nil and an error.
local function fetch(name)
    local dict = ngx.shared[conf.shared_dict]
    local status, headers, body = http_get("/v1/certificates/" .. name)
    if not status then
        dict:set("n:" .. name, "error", conf.error_ttl)
        return nil, headers
    end
    if status ~= 200 then
        local ttl = conf.error_ttl
        if status == 400 or status == 403 or status == 404 then
            ttl = conf.denied_ttl
        elseif status == 503 then
            local ra = tonumber(headers["retry-after"] or "")
            if ra then ttl = math.max(1, math.min(ra, 60)) end
        end
        dict:set("n:" .. name, tostring(status), ttl)
        return nil, "server answered " .. status
    end
    local v, err = json_decode(body)
    if type(v) ~= "table" or type(v.cert) ~= "string" or type(v.key) ~= "string" then
        dict:set("n:" .. name, "bad answer", conf.error_ttl)
        return nil, "bad answer from the server: " .. tostring(err or "fields missing")
    end
    local now = ngx.time()
    local not_after = parse_time(v.not_after) or (now + 3600)
    local ttl = tonumber(v.ttl_seconds) or 60
    if ttl < 1 then ttl = 1 end
    local rec = {
        fresh_until = now + ttl, not_after = not_after,
        staple = type(v.ocsp_staple) == "string" and v.ocsp_staple or "",
        cert = v.cert, key = v.key,
    }
    local keep = not_after - now
    if keep > 0 then
        local ok, serr, forcible = dict:set("c:" .. name, encode_record(rec.fresh_until, rec.not_after, rec.staple, rec.cert, rec.key), keep)
        if not ok then
            log(ngx.WARN, "storing ", name, " in lua_shared_dict ", conf.shared_dict, ": ", serr)
        elseif forcible then
            log(ngx.WARN, "lua_shared_dict ", conf.shared_dict, " is full; older certificates were evicted")
        end
        dict:delete("n:" .. name)
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
    local ok, rec, err = pcall(fetch, name)
    inflight[name] = nil
    local waiting = -sema:count() -- a negative count is the number of waiters
    if waiting > 0 then sema:post(waiting) end
    if not ok then
        log(ngx.ERR, "fetching ", name, ": ", rec)
        return nil
    end
    if not rec then
        log(ngx.WARN, "fetching ", name, ": ", err)
    end
    return rec
end

local pending = {} -- name → true while a background refresh is scheduled, per worker

-- refresh fetches a stale certificate again, from a timer; the next
-- handshake finds the new one in the shared dict.
local function refresh(premature, name)
    if not premature then
        fetch_once(name)
    end
    pending[name] = nil
end

local function refresh_later(name, dict)
    if pending[name] or inflight[name] or dict:get("n:" .. name) then return end
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
    if dict:get("n:" .. name) then return nil end -- refused or failing just now
    if conf.allow_domain and not conf.allow_domain(name) then
        dict:set("n:" .. name, "not allowed", conf.denied_ttl)
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

-- init configures the plugin; call it from init_by_lua. Options:
--   server          "host:port" of the certkeeper server (required)
--   token           bearer token for the server
--   shared_dict     name of a lua_shared_dict (required)
--   lru_size        certificates parsed and kept per worker (1000)
--   timeout         ms to wait for the server's answer (40000: longer
--                   than the server's 30 s wait for a first issuance)
--   connect_timeout ms to connect to the server (2000)
--   allow_domain    function(name) returning true for names that may be
--                   fetched; others get the fallback without any request
--   denied_ttl      s a refused name is not asked again (60)
--   error_ttl       s a failing name is not asked again (10)
function _M.init(opts)
    if type(opts) ~= "table" then error("certkeeper.init: options table required", 2) end
    local server = opts.server
    if type(server) ~= "string" then error("certkeeper.init: server (\"host:port\") required", 2) end
    local host, port = server:match("^%[?([^%]]+)%]?:(%d+)$")
    if not host then error("certkeeper.init: server must be host:port, got " .. server, 2) end
    if type(opts.shared_dict) ~= "string" or not ngx.shared[opts.shared_dict] then
        error("certkeeper.init: shared_dict must name a lua_shared_dict", 2)
    end
    if opts.allow_domain ~= nil and type(opts.allow_domain) ~= "function" then
        error("certkeeper.init: allow_domain must be a function", 2)
    end
    local size = opts.lru_size or DEFAULT_LRU_SIZE
    local err
    lru, err = lrucache.new(size)
    if not lru then error("certkeeper.init: lrucache: " .. tostring(err), 2) end
    conf = {
        server = server, host = host, port = tonumber(port), token = opts.token,
        shared_dict = opts.shared_dict, allow_domain = opts.allow_domain,
        timeout = opts.timeout or DEFAULT_TIMEOUT, connect_timeout = opts.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
        denied_ttl = opts.denied_ttl or DEFAULT_DENIED_TTL, error_ttl = opts.error_ttl or DEFAULT_ERROR_TTL,
    }
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
