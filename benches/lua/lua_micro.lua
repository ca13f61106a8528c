-- Micro-benchmark of skynet.cluster.core (not a test: nothing is asserted about speed).
--
-- Usage: <lua> benches/lua/lua_micro.lua CORE_SO LUA_DIR [STOCK_CORE_SO]
--   CORE_SO        our module (e.g. $(BUILD)/lua/skynet/cluster/core.so)
--   LUA_DIR        directory holding testmsg.so (test helper that makes lightuserdata messages)
--   STOCK_CORE_SO  optional (or env STOCK_CORE_SO): stock lua-cluster.c built as a Lua C module for
--                  this interpreter's version, to time it side by side. Never built by this repo.
-- Env: BENCH_SECONDS (default 0.3): CPU time per measurement; BENCH_ROUNDS (default 5): measurements
-- per module, alternating ours and stock; the best of each is kept. For profiling (e.g. under
-- callgrind): BENCH_ONLY=<substring of a row name>, BENCH_N=<fixed iterations>, BENCH_ROUNDS=1.
--
-- Prints ns/op (os.clock CPU time) per function. Where a loop needs a fresh malloc'ed message per
-- iteration (the function frees it) or frees a returned one, that helper cost is included, the
-- same for both modules; the "helper" rows show it alone.

local core_so, lua_dir, stock_so = ...
assert(core_so and lua_dir, "usage: lua_micro.lua CORE_SO LUA_DIR [STOCK_CORE_SO]")
if stock_so == nil or stock_so == "" then stock_so = os.getenv("STOCK_CORE_SO") end
if stock_so == "" then stock_so = nil end
package.cpath = lua_dir .. "/?.so"
local testmsg = require "testmsg"
local new, free, free_own, disown = testmsg.new, testmsg.free, testmsg.free_own, testmsg.disown

local function load_core(path)
    local open, err = package.loadlib(path, "luaopen_skynet_cluster_core")
    if not open then error("cannot load " .. path .. ": " .. tostring(err)) end
    return open()
end

local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "") or 0.3

-- Iterations for about SECONDS of CPU time per measurement.
local function calibrate(fn, core)
    local n = 64
    while true do
        local t0 = os.clock()
        fn(core, n)
        local dt = os.clock() - t0
        if dt >= 0.02 then return math.max(n, math.floor(n * SECONDS / dt)) end
        n = n * 4
    end
end

local function once(fn, core, n)
    collectgarbage("collect")
    local t0 = os.clock()
    fn(core, n)
    return (os.clock() - t0) / n * 1e9
end

-- ROUNDS measurements per module, alternating ours and stock so that both see the same machine
-- load; the best (lowest) of each is kept.
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or "") or 5
local FIXED_N = tonumber(os.getenv("BENCH_N") or "")
local function measure(fn, mods)
    local n = FIXED_N or calibrate(fn, mods[1])
    local best = {}
    for _ = 1, ROUNDS do
        for i, m in ipairs(mods) do
            local t = once(fn, m, n)
            if not best[i] or t < best[i] then best[i] = t end
        end
    end
    return best
end

local function bytes(n, seed)
    local t, x = {}, seed or 1
    for i = 1, n do
        x = (x * 1103515245 + 12345) % 2147483648
        t[i] = string.char(x % 256)
    end
    return table.concat(t)
end

local TINY = bytes(26, 7)              -- about skynet.pack("PING", 1, 1.5) sized
local BIG = bytes(65536, 11)           -- 64 KiB: multi-part both ways
local HALF = BIG:sub(1, 32768)
local TAG = "(host1234-node2-17):01000010-3"

local benches = {
    { "helper: testmsg.new+free (tiny)", function(_, n)
        for _ = 1, n do local p = new(TINY); free_own(p) end
    end },
    { "helper: testmsg.new+free (32 KiB)", function(_, n)
        for _ = 1, n do local p = new(HALF); free_own(p) end
    end },
    { "helper: testmsg.new+free (64 KiB)", function(_, n)
        for _ = 1, n do local p = new(BIG); free_own(p) end
    end },
    { "packrequest tiny (+new)", function(core, n)
        local packrequest = core.packrequest
        for i = 1, n do
            local p, sz = new(TINY); disown(p)
            packrequest(0x01000010, i % 0x7fffffff + 1, p, sz)
        end
    end },
    { "packrequest tiny name (+new)", function(core, n)
        local packrequest = core.packrequest
        for i = 1, n do
            local p, sz = new(TINY); disown(p)
            packrequest(".service", i % 0x7fffffff + 1, p, sz)
        end
    end },
    { "packrequest 64 KiB (+new)", function(core, n)
        local packrequest = core.packrequest
        for i = 1, n do
            local p, sz = new(BIG); disown(p)
            packrequest(0x01000010, i % 0x7fffffff + 1, p, sz)
        end
    end },
    { "packpush tiny (+new)", function(core, n)
        local packpush = core.packpush
        for i = 1, n do
            local p, sz = new(TINY); disown(p)
            packpush(0x01000010, i % 0x7fffffff + 1, p, sz)
        end
    end },
    { "packtrace", function(core, n)
        local packtrace = core.packtrace
        for _ = 1, n do packtrace(TAG) end
    end },
    { "unpackrequest tiny (+free)", function(core, n)
        local unpackrequest = core.unpackrequest
        local req = core.packrequest -- a real 0x00 body, without the 2-byte length prefix
        local p0, sz0 = new(TINY); disown(p0)
        local frame = req(0x01000010, 5, p0, sz0)
        local p, sz = new(frame:sub(3))
        for _ = 1, n do
            local _, _, msg = unpackrequest(p, sz)
            free(msg)
        end
        free_own(p)
    end },
    { "packresponse tiny", function(core, n)
        local packresponse = core.packresponse
        local p, sz = new(TINY)
        for i = 1, n do packresponse(i, true, p, sz) end
        free_own(p)
    end },
    { "packresponse 64 KiB", function(core, n)
        local packresponse = core.packresponse
        local p, sz = new(BIG)
        for i = 1, n do packresponse(i, true, p, sz) end
        free_own(p)
    end },
    { "unpackresponse tiny", function(core, n)
        local unpackresponse = core.unpackresponse
        local body = core.packresponse(5, true, TINY):sub(3)
        for _ = 1, n do unpackresponse(body) end
    end },
    { "append+concat 64 KiB (+2 new, +free)", function(core, n)
        local append, concat = core.append, core.concat
        for _ = 1, n do
            local t = {}
            append(t, nil, 65536)
            local p, sz = new(HALF); disown(p); append(t, p, sz)
            p, sz = new(HALF); disown(p); append(t, p, sz)
            local m = concat(t)
            free(m)
        end
    end },
    { "isname", function(core, n)
        local isname = core.isname
        for _ = 1, n do isname("@name") end
    end },
}

local ours = load_core(core_so)
local stock = stock_so and load_core(stock_so)

print(string.format("lua_micro: %s, ours %s", _VERSION, core_so))
if stock then
    print("lua_micro: stock " .. stock_so)
else
    print("lua_micro: stock module not given (STOCK_CORE_SO=/path/to/stock/core.so to compare)")
end
print(string.format("%-38s %12s %12s %8s", "function", "ours ns/op", stock and "stock ns/op" or "", stock and "stock/ours" or ""))
local mods = { ours, stock }
local only = os.getenv("BENCH_ONLY")
for _, b in ipairs(benches) do
    local name, fn = b[1], b[2]
    if only and not name:find(only, 1, true) then goto next end
    local r = measure(fn, mods)
    if stock then
        print(string.format("%-38s %12.1f %12.1f %8.2f", name, r[1], r[2], r[2] / r[1]))
    else
        print(string.format("%-38s %12.1f", name, r[1]))
    end
    ::next::
end
if testmsg.live() ~= 0 then print("lua_micro: warning: " .. testmsg.live() .. " helper buffers not accounted for") end
