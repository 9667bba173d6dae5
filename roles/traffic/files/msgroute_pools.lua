-- msgroute.rollout pools: who is in each pool (legacy, new), which member takes a request, which members are
-- marked down, and how many requests each member has in flight.
--
-- Membership is run-time state, like the weights: it lives in the shared dict `msgroute_traffic`, so adding a
-- router, retiring legacy or bringing it back changes no nginx.conf line that needs a reload (a reload closes
-- every idle kept-alive client connection, and a client that sends on one at that moment gets no answer).
-- nginx.conf carries the same members on its runtime line, so a cold start serves exactly what was last set.
--
-- The three upstream blocks of nginx.conf (legacy, new, shadow) each have one placeholder server and a
-- balancer_by_lua that calls balance(pool): the way ingress-nginx feeds Kubernetes endpoints to nginx.
-- What nginx's static upstreams did for us is kept here:
--   * one try per member (or traffic_next_upstream_tries), never the same member twice in one request;
--   * passive failure marking: a member that failed max_fails times within fail_timeout (connect error,
--     timeout, 502/503/504, as nginx counts them) is not chosen for fail_timeout; when every member of the
--     new pool is down the split sends the request to legacy straight away (the failover, without the wait);
--   * round robin over the members that are up.
local P = {}

local ngx = ngx
local tonumber = tonumber
local fmt = string.format
local cjson = require("cjson.safe")

local DICT = "msgroute_traffic"
local POOLS = { "legacy", "new" }
local FAIL_STATUS = { ["502"] = true, ["503"] = true, ["504"] = true }
-- Longest name and most members accepted from the runtime API (bounds what a PUT can make nginx hold).
local MAX_NAME = 128
local MAX_MEMBERS = 256

local cfg = { next_tries = 0, max_fails = 3, fail_timeout = 10 }
-- This worker's decoded copy of the members, refreshed when the shared generation moves.
local cached_gen, cached

local function dict()
    return ngx.shared[DICT]
end

-- nginx time ("10s", "500ms", "1m", "1h", "30") in seconds, or nil.
function P.seconds(text)
    local number, unit = tostring(text):match("^(%d+%.?%d*)(%a*)$")
    local scale = ({ [""] = 1, s = 1, ms = 0.001, m = 60, h = 3600 })[unit or ""]
    if not number or not scale then
        return nil
    end
    return tonumber(number) * scale
end

function P.configure(settings)
    local fail_timeout = P.seconds(settings.fail_timeout)
    if not fail_timeout or fail_timeout <= 0 then
        error("msgroute pools: fail_timeout must be an nginx time above 0, got " .. tostring(settings.fail_timeout))
    end
    cfg = { next_tries = settings.next_tries, max_fails = settings.max_fails, fail_timeout = fail_timeout }
end

local function ipv4(host)
    local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a then
        return false
    end
    for _, octet in ipairs({ a, b, c, d }) do
        if tonumber(octet) > 255 then
            return false
        end
    end
    return true
end

-- "ip:port" -> ip, port (nil unless an IPv4 address and a port 1-65535).
local function split_peer(peer)
    if type(peer) ~= "string" then
        return nil
    end
    local host, port = peer:match("^([%d.]+):(%d+)$")
    port = tonumber(port)
    if not host or not ipv4(host) or not port or port < 1 or port > 65535 then
        return nil
    end
    return host, port
end

-- Name resolution in the master at load time only (init_by_lua), blocking like nginx's own resolution of
-- upstream names, which it replaces: getaddrinfo through LuaJIT's FFI (no resolver library is needed and no
-- process is started). Never called while serving requests: the runtime API takes resolved addresses.
local ffi_ready
local function resolve(host)
    if ipv4(host) then
        return host
    end
    local ffi = require("ffi")
    if not ffi_ready then
        pcall(ffi.cdef, [[
            struct msgroute_addrinfo {
                int ai_flags; int ai_family; int ai_socktype; int ai_protocol; unsigned int ai_addrlen;
                void *ai_addr; char *ai_canonname; struct msgroute_addrinfo *ai_next;
            };
            int getaddrinfo(const char *node, const char *service, const struct msgroute_addrinfo *hints,
                            struct msgroute_addrinfo **res);
            void freeaddrinfo(struct msgroute_addrinfo *res);
            const char *inet_ntop(int af, const void *src, char *dst, unsigned int size);
        ]])
        ffi_ready = true
    end
    local hints = ffi.new("struct msgroute_addrinfo")
    hints.ai_family = 2 -- AF_INET
    hints.ai_socktype = 1 -- SOCK_STREAM
    local res = ffi.new("struct msgroute_addrinfo *[1]")
    if ffi.C.getaddrinfo(host, nil, hints, res) ~= 0 or res[0] == nil then
        return nil
    end
    local text = ffi.new("char[16]")
    -- struct sockaddr_in: family (2 bytes), port (2), address (4).
    local ok = ffi.C.inet_ntop(2, ffi.cast("const unsigned char *", res[0].ai_addr) + 4, text, 16) ~= nil
    local address = ok and ffi.string(text) or nil
    ffi.C.freeaddrinfo(res[0])
    return address
end

-- A member as given ({name, address[, peer]}) -> {name, address, peer, ip, port}, or nil and why.
-- `resolve_names`: in init only; the runtime API needs `peer` (or an address that is already ip:port).
local function member(entry, resolve_names)
    if type(entry) ~= "table" then
        return nil, "a member must be an object with name and address"
    end
    local name, address = entry.name, entry.address
    if type(name) ~= "string" or not name:match("^[%w._-]+$") or #name > MAX_NAME then
        return nil, "member name must be 1-" .. MAX_NAME .. " characters [A-Za-z0-9._-], got " .. tostring(name)
    end
    if type(address) ~= "string" then
        return nil, "member " .. name .. " has no address"
    end
    local host, port = address:match("^([%w._-]+):(%d+)$")
    if not host or not tonumber(port) or tonumber(port) < 1 or tonumber(port) > 65535 then
        return nil, "member " .. name .. ": address must be host:port, got " .. address
    end
    local peer = entry.peer
    if peer == nil or peer == cjson.null then
        local ip = ipv4(host) and host or (resolve_names and resolve(host))
        if not ip then
            return nil, "member " .. name .. ": " .. (resolve_names and "cannot resolve " or "not resolved: ") .. host
        end
        peer = ip .. ":" .. port
    end
    local ip, peer_port = split_peer(peer)
    if not ip then
        return nil, "member " .. name .. ": peer must be an IPv4 address and port, got " .. tostring(peer)
    end
    return { name = name, address = address, peer = peer, ip = ip, port = peer_port }
end

-- {legacy = {...}, new = {...}} as given -> checked members per pool, or nil and why.
function P.check(given, resolve_names)
    if type(given) ~= "table" then
        return nil, "members must be an object with the pools legacy and new"
    end
    local out, seen = {}, {}
    for key in pairs(given) do
        if key ~= "legacy" and key ~= "new" then
            return nil, "unknown pool " .. tostring(key) .. " (legacy, new)"
        end
    end
    for _, pool in ipairs(POOLS) do
        local list = given[pool]
        if list == nil or list == cjson.null then
            list = {}
        end
        if type(list) ~= "table" or #list > MAX_MEMBERS then
            return nil, pool .. " members must be a list of at most " .. MAX_MEMBERS
        end
        out[pool] = {}
        for i = 1, #list do
            local m, err = member(list[i], resolve_names)
            if not m then
                return nil, pool .. ": " .. err
            end
            if seen[m.peer] then
                return nil, "two members share the peer " .. m.peer
            end
            seen[m.peer] = true
            out[pool][i] = m
        end
    end
    return out
end

local function strip(list)
    local out = {}
    for i, m in ipairs(list) do
        out[i] = { name = m.name, address = m.address, peer = m.peer }
    end
    return out
end

-- Checked members become the members in force (every worker sees them on its next request).
function P.store(members)
    local d = dict()
    d:set("members", cjson.encode({ legacy = strip(members.legacy), new = strip(members.new) }))
    d:incr("members_gen", 1, 0)
end

local function load()
    local d = dict()
    local gen = d:get("members_gen") or 0
    if cached and gen == cached_gen then
        return cached
    end
    local decoded = cjson.decode(d:get("members") or "") or {}
    local members = P.check(decoded, false) or { legacy = {}, new = {} }
    cached, cached_gen = members, gen
    return members
end

function P.members(pool)
    return load()[pool] or {}
end

function P.has(pool)
    return #P.members(pool) > 0
end

local function down(peer)
    return cfg.max_fails > 0 and dict():get("down|" .. peer) ~= nil
end

-- Whether any member of the pool is not marked down.
function P.live(pool)
    for _, m in ipairs(P.members(pool)) do
        if not down(m.peer) then
            return true
        end
    end
    return false
end

-- balancer_by_lua of upstream msgroute_<pool> (pool "shadow" balances over the new pool's members with no
-- retry, no marking and no in-flight count: shadow copies never decide a member's health).
function P.balance(pool)
    local balancer = require("ngx.balancer")
    local list = P.members(pool == "shadow" and "new" or pool)
    local ctx = ngx.ctx
    local key = "tried_" .. pool
    local tried = ctx[key]
    if not tried then
        tried = {}
        ctx[key] = tried
        if pool ~= "shadow" then
            local tries = #list
            if cfg.next_tries > 0 and cfg.next_tries < tries then
                tries = cfg.next_tries
            end
            if tries > 1 then
                balancer.set_more_tries(tries - 1)
            end
        end
    end
    local n = #list
    if n == 0 then
        -- Only in a race with a membership change: nginx tries the placeholder, fails, answers 502.
        ngx.log(ngx.WARN, "msgroute pools: no member in pool ", pool)
        return
    end
    local start = dict():incr("rr|" .. pool, 1, 0)
    local pick, fallback
    for i = 0, n - 1 do
        local m = list[(start + i) % n + 1]
        if not tried[m.peer] then
            if pool == "shadow" or not down(m.peer) then
                pick = m
                break
            end
            fallback = fallback or m
        end
    end
    pick = pick or fallback or list[start % n + 1]
    tried[pick.peer] = true
    if pool ~= "shadow" then
        dict():incr("active|" .. pick.peer, 1, 0)
    end
    local ok, err = balancer.set_current_peer(pick.ip, pick.port)
    if not ok then
        ngx.log(ngx.ERR, "msgroute pools: cannot use ", pick.peer, ": ", err)
    end
end

-- A failed attempt on a member: max_fails of them within fail_timeout mark it down for fail_timeout.
local function failed(peer)
    if cfg.max_fails <= 0 then
        return
    end
    local d = dict()
    local n = d:incr("fails|" .. peer, 1, 0, cfg.fail_timeout)
    if n and n >= cfg.max_fails then
        d:set("down|" .. peer, true, cfg.fail_timeout)
        d:delete("fails|" .. peer)
        ngx.log(ngx.WARN, "msgroute pools: ", peer, " failed ", n, " times, marked down for ", cfg.fail_timeout, " s")
    end
end

-- log_by_lua: every attempt of the request (across the failover redirect) from $upstream_addr and
-- $upstream_status ("a, b : c" / "502, 503 : 200"); each one ends its in-flight count, a failed one counts
-- towards marking its member down.
function P.log(addrs, statuses)
    if not addrs or addrs == "" then
        return
    end
    addrs = addrs:gsub(" : ", ", ")
    statuses = (statuses or ""):gsub(" : ", ", ")
    local status_list = {}
    for status in statuses:gmatch("[^, ]+") do
        status_list[#status_list + 1] = status
    end
    local d = dict()
    local i = 0
    for peer in addrs:gmatch("[^, ]+") do
        i = i + 1
        if split_peer(peer) then
            local left = d:incr("active|" .. peer, -1, 0)
            if left and left <= 0 then
                d:delete("active|" .. peer)
            end
            if FAIL_STATUS[status_list[i] or ""] then
                failed(peer)
            end
        end
    end
end

-- JSON of the members in force, per pool, with each member's in-flight requests and whether it is down;
-- `in_flight` also names peers that are no longer members but still finish requests (a drain).
function P.state_json()
    local d = dict()
    local members = load()
    local parts = {}
    for _, pool in ipairs(POOLS) do
        local items = {}
        for _, m in ipairs(members[pool]) do
            items[#items + 1] = fmt('{"name":%s,"address":%s,"peer":%s,"down":%s}', cjson.encode(m.name),
                cjson.encode(m.address), cjson.encode(m.peer), tostring(down(m.peer)))
        end
        parts[#parts + 1] = fmt('"%s":[%s]', pool, table.concat(items, ","))
    end
    local flights = {}
    for _, key in ipairs(d:get_keys(0)) do
        local peer = key:match("^active|(.+)$")
        local n = peer and d:get(key)
        if n and n > 0 then
            flights[#flights + 1] = fmt("%s:%d", cjson.encode(peer), n)
        end
    end
    return fmt('{%s}', table.concat(parts, ",")), fmt("{%s}", table.concat(flights, ","))
end

return P
