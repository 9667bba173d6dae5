-- msgroute.rollout guard: who may call it, what an Alertmanager webhook asks for, and the record it keeps.
--
-- nginx.conf embeds this file beside msgroute_traffic.lua (which owns the weights and calls in here), so the
-- guard is staged, validated and swapped with the rest of the configuration. The guard acts inside nginx, on
-- every lb host: no controller, playbook or other process has to run for a release to be rolled back.
--
-- Auth: nginx.conf holds only the hex SHA-1 of SALT .. token, never the token. Alertmanager sends
-- `Authorization: Bearer <token>`; the digests are compared in constant time.
-- Record: guard.json in the guard directory (mounted read-write; the configuration directory stays read-only),
-- written to a temporary file and renamed over, so a reader never sees half a record.
local G = {}

local ngx = ngx
local bit = require("bit")
local cjson = require("cjson.safe")

local SALT = "msgroute-guard:"
local FILE = "guard.json"
local CLEARED_FILE = "guard.cleared.json"
local LABEL_TEXT_MAX = 200

local cfg = { digest = nil, dir = nil, version = nil }

function G.configure(settings)
    cfg = settings
end

local function hex(raw)
    return (raw:gsub(".", function(c)
        return string.format("%02x", c:byte())
    end))
end

-- Equal strings of equal length, in time that depends on the length only.
local function same(a, b)
    if #a ~= #b then
        return false
    end
    local diff = 0
    for i = 1, #a do
        diff = bit.bor(diff, bit.bxor(a:byte(i), b:byte(i)))
    end
    return diff == 0
end

-- true when the request carries the token whose digest nginx.conf holds. Without a configured token
-- (rollout_guard_token null) nobody is let in.
function G.authenticated(header)
    if not cfg.digest or type(header) ~= "string" then
        return false
    end
    local token = header:match("^[Bb]earer%s+(%S+)%s*$")
    if not token then
        return false
    end
    return same(hex(ngx.sha1_bin(SALT .. token)), cfg.digest)
end

-- The alerts of an Alertmanager webhook (v4), or nil and why the body is not one.
function G.parse(body)
    if not body or body == "" then
        return nil, "empty body"
    end
    local data = cjson.decode(body)
    if type(data) ~= "table" then
        return nil, "not a JSON object"
    end
    if type(data.alerts) ~= "table" then
        return nil, "no alerts list"
    end
    return data.alerts
end

local function text(value)
    if type(value) == "string" then
        return value:sub(1, LABEL_TEXT_MAX)
    end
    if type(value) == "number" then
        return tostring(value)
    end
    return nil
end

-- The first alert that asks for a rollback of `version`: firing, labels.rollout_action "rollback",
-- labels.version the version this lb serves. Resolved alerts, hold alerts and other versions never act.
function G.rollback_alert(alerts, version)
    for _, alert in ipairs(alerts) do
        if type(alert) == "table" and alert.status == "firing" and type(alert.labels) == "table"
            and alert.labels.rollout_action == "rollback" and alert.labels.version == version then
            return alert
        end
    end
    return nil
end

function G.record(alert, version, weights_before, now)
    local labels = alert.labels
    local annotations = type(alert.annotations) == "table" and alert.annotations or {}
    return {
        active = true,
        version = version,
        alert = text(labels.alertname) or "unnamed alert",
        phase = text(labels.phase) or "",
        value = text(annotations.value) or "",
        threshold = text(annotations.threshold) or "",
        summary = text(annotations.summary) or "",
        at = now,
        weights_before = weights_before,
    }
end

-- A record applies to the configuration whose version it names, while it is active.
function G.in_force(record, version)
    return type(record) == "table" and record.active == true and record.version == version
end

function G.encode(value)
    if value == nil then
        return "null"
    end
    return cjson.encode(value)
end

function G.decode(raw)
    if not raw then
        return nil
    end
    return cjson.decode(raw)
end

local function path(name)
    return cfg.dir .. "/" .. name
end

local function write_atomically(name, content)
    local final = path(name)
    local tmp = final .. ".tmp"
    local f, err = io.open(tmp, "w")
    if not f then
        return nil, err
    end
    local ok, werr = f:write(content, "\n")
    f:close()
    if not ok then
        os.remove(tmp)
        return nil, werr
    end
    local renamed, rerr = os.rename(tmp, final)
    if not renamed then
        os.remove(tmp)
        return nil, rerr
    end
    return true
end

function G.persist(record)
    if not cfg.dir then
        return nil, "no guard directory configured"
    end
    return write_atomically(FILE, cjson.encode(record))
end

-- The record on disk: nil when there is none. A file that cannot be read or parsed fails closed: it is
-- taken as an active record for this version, so nginx never serves the new pool on a record it cannot read.
function G.load()
    if not cfg.dir then
        return nil
    end
    local f = io.open(path(FILE), "r")
    if not f then
        return nil
    end
    local raw = f:read("*a")
    f:close()
    local record = cjson.decode(raw or "")
    if type(record) ~= "table" then
        ngx.log(ngx.ERR, "msgroute guard: ", path(FILE), " is not a JSON record; treating it as a rollback ",
            "of version ", cfg.version, " (clear it with DELETE /_msgroute/guard)")
        return { active = true, version = cfg.version, alert = "unreadable " .. FILE, phase = "", value = "",
            threshold = "", summary = "", at = 0, weights_before = {} }
    end
    return record
end

-- Keeps the cleared record beside (guard.cleared.json, with why and when), then removes guard.json: no
-- guard.json means no record, whoever reads the directory.
function G.clear(record, reason, now)
    if not cfg.dir then
        return nil, "no guard directory configured"
    end
    if record then
        record.active = false
        record.cleared_at = now
        record.cleared_reason = reason
        local ok, err = write_atomically(CLEARED_FILE, cjson.encode(record))
        if not ok then
            return nil, err
        end
    end
    local removed, err = os.remove(path(FILE))
    if not removed and not tostring(err):find("No such file", 1, true) then
        return nil, err
    end
    return true
end

return G
