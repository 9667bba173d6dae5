-- msgroute.rollout traffic: the split, the shadow sampling, the runtime API, the guard's rollback and the lb
-- metrics.
--
-- nginx.conf (rendered by the traffic role) embeds this file in init_by_lua_block, so the Lua code and the
-- configuration that uses it are staged, validated by `nginx -t` and swapped as one file.
--
-- The values that change during a rollout (new-pool weight, shadow percent, the pools' members: see
-- msgroute_pools.lua) live in the shared dict `msgroute_traffic`, which every worker reads per request and
-- which survives a graceful reload. nginx.conf carries the same values and init() writes them into the dict
-- whenever nginx (re)loads it, so a restart or a reload serves exactly what the file says; the runtime API
-- changes them without a reload.
--
-- The guard (msgroute_guard.lua: auth, webhook, record) sets both to 0 when Alertmanager reports a rollback
-- trigger for the version this configuration serves. Its record outlives the request: init() honours it over
-- the values in nginx.conf, and the runtime API refuses to give the new pool traffic while it stands.
local M = {}

local guard = require("msgroute_guard")
local pools = require("msgroute_pools")

local ngx = ngx
local floor = math.floor
local tonumber = tonumber
local concat = table.concat
local fmt = string.format

local DICT = "msgroute_traffic"
-- Same buckets as the routers' msgroute_request_duration_seconds: the SLA thresholds (45/48/50 ms) are edges,
-- so a quantile at a threshold is exact.
local BUCKETS = {
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.048, 0.05,
    0.06, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
}
local CLASSES = { "1xx", "2xx", "3xx", "4xx", "5xx" }
local MIRROR_RESULTS = { "2xx", "3xx", "4xx", "5xx", "error", "dropped" }
local GUARD_RESULTS = { "rolled_back", "ignored", "unauthorized", "malformed", "too_large", "method" }
-- Longest a guard decision or a runtime change waits for another one in flight.
local LOCK_WAIT_S = 2
-- Hop-by-hop headers and the ones the copy sets itself are not forwarded to the shadow pool.
local SKIP_HEADERS = {
    ["connection"] = true, ["keep-alive"] = true, ["transfer-encoding"] = true, ["content-length"] = true,
    ["te"] = true, ["upgrade"] = true, ["expect"] = true, ["proxy-connection"] = true,
    ["x-msgroute-mirrored"] = true,
}

-- Static settings of this configuration (split key, ports, the guard's). Set in the master by configure();
-- each worker inherits the table of the configuration it was started with. Which pools exist is run-time
-- state (msgroute_pools), not a setting.
local cfg
-- Shadow copies this worker has in flight. Each holds three connections (timer -> relay -> new pool) until
-- the shadow answers or times out; the cap keeps a slow or dead shadow pool from eating the connections and
-- timers the clients need (copies beyond it are dropped and counted).
local in_flight = 0

local function dict()
    return ngx.shared[DICT]
end

local function percent(value)
    local n = tonumber(value)
    if n and n == floor(n) and n >= 0 and n <= 100 then
        return n
    end
    return nil
end

-- A weight or a mirror share must be servable by the pools' members (`members`: checked, per pool).
local function check(new_weight, shadow_percent, members)
    if not new_weight or not shadow_percent then
        return nil, "new_weight and shadow_percent must be whole numbers from 0 to 100"
    end
    if (new_weight > 0 or shadow_percent > 0) and #members.new == 0 then
        return nil, "the new pool has no member: new_weight and shadow_percent must be 0"
    end
    if new_weight < 100 and #members.legacy == 0 then
        return nil, "the legacy pool has no member: new_weight must be 100"
    end
    return true
end

local function current_members()
    return { legacy = pools.members("legacy"), new = pools.members("new") }
end

-- Weights and (when given) members change together, under one generation.
local function store(new_weight, shadow_percent, members)
    local d = dict()
    if members then
        pools.store(members)
    end
    d:set("new_weight", new_weight)
    d:set("shadow_percent", shadow_percent)
    d:set("changed_at", ngx.now())
    d:incr("generation", 1, 0)
end

function M.configure(settings)
    cfg = settings
    guard.configure({ digest = settings.guard_digest, dir = settings.guard_dir, version = settings.version })
    pools.configure({ next_tries = settings.next_tries, max_fails = settings.max_fails,
        fail_timeout = settings.fail_timeout })
end

-- The guard's record as the workers share it (nil when there is none).
local function guard_record()
    return guard.decode(dict():get("guard"))
end

local function guard_in_force()
    local record = guard_record()
    return guard.in_force(record, cfg.version), record
end

-- Guard decisions and runtime changes read the weights and the record, then write them: one at a time over
-- all workers, so a PUT can never slip in between the guard's check and its rollback.
local function locked(fn, ...)
    local d = dict()
    local deadline = ngx.now() + LOCK_WAIT_S
    while not d:add("lock", true, LOCK_WAIT_S) do
        if ngx.now() > deadline then
            return nil, "the runtime values are locked by another change"
        end
        ngx.sleep(0.001)
    end
    local ok, a, b = pcall(fn, ...)
    d:delete("lock")
    if not ok then
        error(a)
    end
    return a, b
end

-- init_by_lua: the runtime values written in nginx.conf become the values in force. An invalid value makes
-- init fail, so `nginx -t` rejects the file before it can go live.
function M.init(values)
    local new_weight, shadow_percent = percent(values.new_weight), percent(values.shadow_percent)
    -- Member names are resolved here, once per load, as nginx resolved the names of static upstreams.
    local members, err = pools.check(values.members, true)
    local ok = members ~= nil
    if ok then
        ok, err = check(new_weight, shadow_percent, members)
    end
    if not ok then
        error("msgroute traffic: invalid runtime values in the configuration: " .. err)
    end
    -- The guard's decision lasts: after a restart or a reload nginx serves legacy only for the version it
    -- rolled back, whatever weights nginx.conf was last rendered with.
    local record = guard.load()
    dict():set("guard", record and guard.encode(record) or nil)
    if guard.in_force(record, cfg.version) and (new_weight > 0 or shadow_percent > 0) then
        if #members.legacy > 0 then
            ngx.log(ngx.WARN, "msgroute guard: version ", cfg.version, " was rolled back by ", record.alert,
                "; serving legacy only instead of new_weight=", new_weight, " shadow_percent=", shadow_percent)
            new_weight, shadow_percent = 0, 0
        else
            ngx.log(ngx.ERR, "msgroute guard: version ", cfg.version, " was rolled back by ", record.alert,
                " but the legacy pool has no member to serve")
        end
    end
    store(new_weight, shadow_percent, members)
    -- Changes on every start and reload only: the proof that a weight change did not reload nginx.
    dict():set("loaded_at", ngx.now())
end

-- Exactly `share` of every 100 consecutive calls answer true, spread evenly (Bresenham): the shared
-- counter makes the share exact across workers over any window, where hashing a random request id would
-- only be right on average.
local function take(counter, share)
    if share <= 0 then
        return false
    end
    if share >= 100 then
        return true
    end
    local n = dict():incr(counter, 1, 0)
    return floor(n * share / 100) ~= floor((n - 1) * share / 100)
end

-- rewrite_by_lua of `location /`: choose the pool, then hand the request to its named location.
function M.route()
    local weight = dict():get("new_weight") or 0
    local pool
    local override = cfg.canary_var and ngx.var[cfg.canary_var]
    if override then
        override = override:lower()
    end
    -- The override never reaches a pool the rollout does not send live traffic to: after a rollback
    -- (weight 0) `always` is ignored, so nobody is served by an engine that was just taken out.
    if override == "always" and weight > 0 then
        pool = "new"
    elseif override == "never" and pools.has("legacy") then
        pool = "legacy"
    else
        local bucket
        if cfg.split_var then
            local key = ngx.var[cfg.split_var]
            if key and key ~= "" then
                bucket = tonumber(ngx.var.msgroute_bucket)
            end
        end
        if bucket then
            -- Sticky: split_clients put the key in one of 100 equal buckets; raising the weight only
            -- moves buckets from legacy to new, so a user never flips back and forth during a rollout.
            pool = bucket < weight and "new" or "legacy"
        else
            pool = take("split_seq", weight) and "new" or "legacy"
        end
    end
    -- Only pools with members take requests. A new pool whose every member is marked down sends the request
    -- to legacy at once (counted as a failover), where trying the dead members first would only add latency.
    local has_legacy = pools.has("legacy")
    if pool == "new" and not (pools.has("new") and (pools.live("new") or not has_legacy)) and has_legacy then
        ngx.var.msgroute_chosen = "new"
        return ngx.exec("@msgroute_legacy")
    elseif pool == "legacy" and not has_legacy then
        pool = "new"
    end
    ngx.var.msgroute_chosen = pool
    -- Without legacy members there is nothing to fail over to: the new pool's own answer reaches the client.
    if pool == "new" and not has_legacy then
        return ngx.exec("@msgroute_new_alone")
    end
    return ngx.exec("@msgroute_" .. pool)
end

-- balancer_by_lua of the upstreams msgroute_legacy, msgroute_new and msgroute_shadow.
function M.balance(pool)
    return pools.balance(pool)
end

local function count(key)
    dict():incr(key, 1, 0)
end

local function status_class(status)
    local class = floor((tonumber(status) or 0) / 100)
    if class < 1 or class > 5 then
        return nil
    end
    return class .. "xx"
end

-- Runs in a timer, detached from the client's request: the copy goes to the relay listener, which proxies
-- it to the shadow pool with the mirror timeouts. Its answer is only counted.
-- One copy over a pooled connection to the relay: at production rates a new loopback connection per copy
-- would soon run out of ephemeral ports (TIME_WAIT). The answer is read in full so the connection can be
-- reused; the relay's own answers (nginx) and the routers' always carry a Content-Length.
local function send_copy(request, head)
    local sock = ngx.socket.tcp()
    sock:settimeout(cfg.mirror_timeout_ms)
    if not sock:connect("127.0.0.1", cfg.relay_port) then
        return "error"
    end
    local line = sock:send(request) and sock:receive("*l")
    local status = line and tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
    if not status then
        sock:close()
        return "error"
    end
    local length, close
    while true do
        local header = sock:receive("*l")
        if not header then
            sock:close()
            return status_class(status) or "error"
        end
        if header == "" then
            break
        end
        local name, value = header:match("^([^:]+):%s*(.-)%s*$")
        name = name and name:lower()
        if name == "content-length" then
            length = tonumber(value)
        elseif name == "connection" and value:lower() == "close" then
            close = true
        end
    end
    if head or status == 204 or status == 304 or status < 200 then
        length = length or 0
    elseif length and length > 0 and not sock:receive(length) then
        length = nil
    end
    if length and not close then
        sock:setkeepalive(60000, cfg.mirror_max_in_flight)
    else
        sock:close()
    end
    return status_class(status) or "error"
end

local function deliver(premature, request, head)
    if not premature then
        local ok, result = pcall(send_copy, request, head)
        count("mirror|" .. (ok and result or "error"))
    end
    in_flight = in_flight - 1
end

-- content_by_lua of the internal mirror location. nginx's `mirror` keeps the client's connection from
-- taking its next request until the mirror subrequest ends; answering it at once and sending the copy from
-- a timer means a slow or dead shadow pool never holds up a primary request.
function M.mirror()
    if not take("mirror_seq", dict():get("shadow_percent") or 0) or not pools.has("new") then
        return ngx.exit(204)
    end
    local body = ngx.req.get_body_data() or ""
    if body == "" and ngx.req.get_body_file() then
        -- Bodies are kept in memory (client_body_buffer_size = client_max_body_size); never read a file here.
        count("mirror|dropped")
        return ngx.exit(204)
    end
    local lines = {
        fmt("%s %s HTTP/1.1", ngx.req.get_method(), ngx.var.request_uri),
        "Host: " .. (ngx.var.http_host or "localhost"),
        "X-Request-Id: " .. ngx.var.request_id,
        "Content-Length: " .. #body,
    }
    for name, value in pairs(ngx.req.get_headers(64, true)) do
        local lower = name:lower()
        if not SKIP_HEADERS[lower] and lower ~= "host" and lower ~= "x-request-id" then
            if type(value) == "table" then
                for _, v in ipairs(value) do
                    lines[#lines + 1] = name .. ": " .. v
                end
            else
                lines[#lines + 1] = name .. ": " .. value
            end
        end
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = body
    if in_flight >= cfg.mirror_max_in_flight then
        -- Shed the copy, never the primary.
        count("mirror|dropped")
        return ngx.exit(204)
    end
    local ok = ngx.timer.at(0, deliver, concat(lines, "\r\n"), ngx.req.get_method() == "HEAD")
    if ok then
        in_flight = in_flight + 1
    else
        count("mirror|dropped")
    end
    return ngx.exit(204)
end

-- log_by_lua of the client server: per-pool counts by status class and a latency histogram. `pool` is the
-- pool that answered (legacy when a request chosen for new failed over), the header X-Msgroute-Pool says
-- the same to the client.
function M.log()
    pools.log(ngx.var.upstream_addr, ngx.var.upstream_status)
    local pool = ngx.var.msgroute_pool
    if pool ~= "new" and pool ~= "legacy" then
        return
    end
    local d = dict()
    d:incr("req|" .. pool .. "|" .. (status_class(ngx.status) or "5xx"), 1, 0)
    local seconds = tonumber(ngx.var.request_time) or 0
    local slot = #BUCKETS + 1
    for i = 1, #BUCKETS do
        if seconds <= BUCKETS[i] then
            slot = i
            break
        end
    end
    d:incr("lat|" .. pool .. "|" .. slot, 1, 0)
    d:incr("lat_sum|" .. pool, seconds, 0)
    if ngx.var.msgroute_chosen == "new" and pool == "legacy" then
        d:incr("failover", 1, 0)
    end
end

-- `guard` is the record whatever version it names; `guard_in_force` says whether it binds this configuration.
-- `members` are the pools' members in force; `in_flight` the requests each peer (member or not: a drain)
-- still has in flight.
local function state_json(extra)
    local d = dict()
    local in_force, record = guard_in_force()
    local members, in_flight = pools.state_json()
    return fmt(
        '{"new_weight":%d,"shadow_percent":%d,"has_new":%s,"has_legacy":%s,"generation":%d,'
            .. '"changed_at":%.3f,"loaded_at":%.3f,"version":%s,"guard":%s,"guard_in_force":%s,'
            .. '"members":%s,"in_flight":%s%s}\n',
        d:get("new_weight") or 0, d:get("shadow_percent") or 0, tostring(pools.has("new")),
        tostring(pools.has("legacy")), d:get("generation") or 0, d:get("changed_at") or 0, d:get("loaded_at") or 0,
        guard.encode(cfg.version), guard.encode(record), tostring(in_force), members, in_flight, extra or ""
    )
end

local function error_json(message)
    return fmt('{"error":%s}\n', guard.encode(message))
end

local function answer(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.print(body)
    return ngx.exit(status)
end

-- While the guard's record stands for the version in force, only 0/0 may be set: the guard's decision is
-- never overwritten silently (clear it first, DELETE /_msgroute/guard).
local function put(new_weight, shadow_percent, members)
    local in_force, record = guard_in_force()
    if in_force and (new_weight > 0 or shadow_percent > 0) then
        return nil, fmt("version %s was rolled back by the guard (%s, %s over %s at %.3f): new_weight and "
            .. "shadow_percent must stay 0 until the guard record is cleared (DELETE /_msgroute/guard, module "
            .. "traffic_runtime state=clear_guard)", cfg.version, tostring(record.alert), tostring(record.value),
            tostring(record.threshold), tonumber(record.at) or 0)
    end
    store(new_weight, shadow_percent, members)
    return true
end

-- The members a PUT's body gives ({"members": {"legacy": [...], "new": [...]}}, each {name, address, peer}),
-- or nil when the body gives none (membership stays as it is).
local function body_members()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body or body == "" then
        return nil
    end
    local data = require("cjson.safe").decode(body)
    if type(data) ~= "table" then
        return nil, "the body must be a JSON object"
    end
    if data.members == nil then
        return nil
    end
    return pools.check(data.members, false)
end

-- content_by_lua of the runtime API (a listener on the container's loopback only: the role reaches it with
-- `docker exec`). GET reads the values in force; PUT ?new_weight=N&shadow_percent=M changes both at once,
-- and with a JSON body {"members": ...} the pools' members in the same change.
function M.admin()
    local method = ngx.req.get_method()
    if method == "PUT" then
        local args = ngx.req.get_uri_args()
        local new_weight, shadow_percent = percent(args.new_weight), percent(args.shadow_percent)
        local members, err = body_members()
        if err then
            return answer(400, error_json(err))
        end
        local ok
        ok, err = check(new_weight, shadow_percent, members or current_members())
        if ok then
            ok, err = locked(put, new_weight, shadow_percent, members)
        end
        if not ok then
            return answer(new_weight and shadow_percent and 409 or 400, error_json(err))
        end
    elseif method ~= "GET" then
        return answer(405, '{"error":"GET or PUT"}\n')
    end
    return answer(200, state_json())
end

local function clear(reason)
    local record = guard_record()
    if record then
        local ok, err = guard.clear(record, reason, ngx.now())
        if not ok then
            return nil, "cannot clear the guard record: " .. tostring(err)
        end
        dict():delete("guard")
    end
    return true, record
end

-- content_by_lua of DELETE /_msgroute/guard?reason=... on the runtime API: clears the guard's record (a new
-- shadow run acknowledges the rollback). Answers the state, with the record it cleared (or null).
function M.admin_guard()
    if ngx.req.get_method() ~= "DELETE" then
        return answer(405, '{"error":"DELETE"}\n')
    end
    local reason = ngx.req.get_uri_args().reason
    reason = type(reason) == "string" and reason:sub(1, 200) or "no reason given"
    local ok, cleared = locked(clear, reason)
    if not ok then
        return answer(500, error_json(cleared))
    end
    if cleared then
        ngx.log(ngx.WARN, "msgroute guard: record of version ", tostring(cleared.version), " (",
            tostring(cleared.alert), ") cleared: ", reason)
    end
    return answer(200, state_json(',"cleared":' .. guard.encode(cleared)))
end

local function weights()
    local d = dict()
    return d:get("new_weight") or 0, d:get("shadow_percent") or 0
end

-- Under the lock: the rollback, when the alerts ask for one and there is something to roll back.
local function decide(alerts)
    local alert = guard.rollback_alert(alerts, cfg.version)
    if not alert then
        return "ignored", "no firing rollback alert for version " .. cfg.version
    end
    local new_weight, shadow_percent = weights()
    if new_weight == 0 and shadow_percent == 0 then
        return "ignored", "version " .. cfg.version .. " already gets no traffic"
    end
    if not pools.has("legacy") then
        return "ignored", "the legacy pool has no member to send the traffic to"
    end
    local record = guard.record(alert, cfg.version,
        { new_weight = new_weight, shadow_percent = shadow_percent }, ngx.now())
    store(0, 0)
    dict():set("guard", guard.encode(record))
    return "rolled_back", record
end

local function guard_answer(result, status, body)
    ngx.ctx.guard_result = result
    return answer(status, body)
end

-- content_by_lua of POST /_msgroute/guard (Alertmanager's webhook receiver). A firing rollback alert for the
-- version in force sets the new pool's weight and shadow to 0 in this request, then records it; anything
-- else changes nothing. Every answer is counted by result (log phase).
function M.guard()
    if ngx.req.get_method() ~= "POST" then
        ngx.header["Allow"] = "POST"
        return guard_answer("method", 405, '{"error":"POST only"}\n')
    end
    if not guard.authenticated(ngx.var.http_authorization) then
        ngx.header["WWW-Authenticate"] = 'Bearer realm="msgroute guard"'
        return guard_answer("unauthorized", 401, '{"error":"unauthorized"}\n')
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body and ngx.req.get_body_file() then
        -- The buffer is the size limit, so only a body past the limit could be on disk.
        return guard_answer("too_large", 413, '{"error":"body too large"}\n')
    end
    local alerts, why = guard.parse(body)
    if not alerts then
        return guard_answer("malformed", 400, error_json("not an Alertmanager webhook: " .. why))
    end
    local result, detail = locked(decide, alerts)
    if not result then
        -- Another change held the lock past its limit: Alertmanager sends the webhook again.
        return answer(503, error_json(detail))
    end
    if result == "ignored" then
        ngx.log(ngx.INFO, "msgroute guard: webhook ignored: ", detail)
        return guard_answer("ignored", 200, fmt('{"result":"ignored","reason":%s}\n', guard.encode(detail)))
    end
    local record = detail
    ngx.log(ngx.WARN, "msgroute guard: rolled back version ", record.version, " on alert ", record.alert,
        " (phase ", record.phase, "): value ", record.value, ", threshold ", record.threshold,
        "; new_weight ", record.weights_before.new_weight, " -> 0, shadow_percent ",
        record.weights_before.shadow_percent, " -> 0")
    local persisted, err = guard.persist(record)
    if not persisted then
        ngx.log(ngx.ERR, "msgroute guard: rolled back at run time but could not write the record (",
            tostring(err), "): a restart would serve nginx.conf's weights again")
    end
    return guard_answer("rolled_back", 200, fmt('{"result":"rolled_back","persisted":%s,"record":%s}\n',
        tostring(persisted == true), guard.encode(record)))
end

-- log_by_lua of the guard: counts every answer, including the 413 nginx gives itself for a body past
-- client_max_body_size (before any Lua runs).
function M.guard_log()
    local result = ngx.ctx.guard_result
    if not result and ngx.status == 413 then
        result = "too_large"
    end
    if not result then
        return
    end
    count("guard|" .. result)
    if result ~= "rolled_back" and result ~= "ignored" then
        ngx.log(ngx.WARN, "msgroute guard: refused a webhook from ", ngx.var.remote_addr, ": ", result,
            " (", ngx.status, ")")
    end
end

-- content_by_lua of the metrics listener: Prometheus text format 0.0.4.
function M.metrics()
    local d = dict()
    local out = {}
    local function add(line)
        out[#out + 1] = line
    end
    -- Both pools always: a series that comes and goes with membership would break rate() over a change.
    local names = { "legacy", "new" }
    add("# HELP msgroute_lb_requests_total Client requests answered, by the pool that answered and status class.")
    add("# TYPE msgroute_lb_requests_total counter")
    for _, pool in ipairs(names) do
        for _, class in ipairs(CLASSES) do
            add(fmt('msgroute_lb_requests_total{pool="%s",status_class="%s"} %d', pool, class,
                d:get("req|" .. pool .. "|" .. class) or 0))
        end
    end
    add("# HELP msgroute_lb_request_duration_seconds Time nginx took to answer the client, by answering pool.")
    add("# TYPE msgroute_lb_request_duration_seconds histogram")
    for _, pool in ipairs(names) do
        local cumulative = 0
        for i = 1, #BUCKETS + 1 do
            cumulative = cumulative + (d:get("lat|" .. pool .. "|" .. i) or 0)
            local le = BUCKETS[i] and fmt("%g", BUCKETS[i]) or "+Inf"
            add(fmt('msgroute_lb_request_duration_seconds_bucket{pool="%s",le="%s"} %d', pool, le, cumulative))
        end
        add(fmt('msgroute_lb_request_duration_seconds_sum{pool="%s"} %.6f', pool, d:get("lat_sum|" .. pool) or 0))
        add(fmt('msgroute_lb_request_duration_seconds_count{pool="%s"} %d', pool, cumulative))
    end
    add("# HELP msgroute_lb_failovers_total Requests the split sent to the new pool that legacy answered.")
    add("# TYPE msgroute_lb_failovers_total counter")
    add(fmt("msgroute_lb_failovers_total %d", d:get("failover") or 0))
    add("# HELP msgroute_lb_mirror_requests_total Shadow copies by outcome (status class, error, dropped).")
    add("# TYPE msgroute_lb_mirror_requests_total counter")
    for _, result in ipairs(MIRROR_RESULTS) do
        add(fmt('msgroute_lb_mirror_requests_total{result="%s"} %d', result, d:get("mirror|" .. result) or 0))
    end
    add("# HELP msgroute_lb_new_weight Percent of live requests the split sends to the new pool.")
    add("# TYPE msgroute_lb_new_weight gauge")
    add(fmt("msgroute_lb_new_weight %d", d:get("new_weight") or 0))
    add("# HELP msgroute_lb_shadow_percent Percent of requests copied to the new pool.")
    add("# TYPE msgroute_lb_shadow_percent gauge")
    add(fmt("msgroute_lb_shadow_percent %d", d:get("shadow_percent") or 0))
    add("# HELP msgroute_lb_pool_members Members of each pool in force (run-time membership).")
    add("# TYPE msgroute_lb_pool_members gauge")
    for _, pool in ipairs(names) do
        add(fmt('msgroute_lb_pool_members{pool="%s"} %d', pool, #pools.members(pool)))
    end
    add("# HELP msgroute_lb_guard_webhooks_total Webhooks the guard answered, by result.")
    add("# TYPE msgroute_lb_guard_webhooks_total counter")
    for _, result in ipairs(GUARD_RESULTS) do
        add(fmt('msgroute_lb_guard_webhooks_total{result="%s"} %d', result, d:get("guard|" .. result) or 0))
    end
    local in_force, record = guard_in_force()
    add("# HELP msgroute_lb_guard_rolled_back 1 while the guard's rollback of the version in force stands.")
    add("# TYPE msgroute_lb_guard_rolled_back gauge")
    add(fmt("msgroute_lb_guard_rolled_back %d", in_force and 1 or 0))
    add("# HELP msgroute_lb_guard_rolled_back_timestamp_seconds When the guard rolled the version in force back.")
    add("# TYPE msgroute_lb_guard_rolled_back_timestamp_seconds gauge")
    add(fmt("msgroute_lb_guard_rolled_back_timestamp_seconds %.3f", in_force and tonumber(record.at) or 0))
    add("")
    ngx.header["Content-Type"] = "text/plain; version=0.0.4"
    ngx.print(concat(out, "\n"))
end

return M
