-- Round trips through skynet.cluster.core, beyond the golden cases: every pack function's frames
-- are cut and decoded with the module's own unpack functions (and append/concat for multi-part
-- requests), the way clustersender / clusteragent use them, for payload sizes around every
-- threshold plus deterministic pseudo-random ones up to 200 KiB.
--
-- Usage: <lua> tests/lua/roundtrip.lua LUA_DIR [CORE_DIR]
-- (same layout as replay_core.lua: testmsg.so in LUA_DIR, skynet/cluster/core.so in CORE_DIR,
-- default LUA_DIR). Exit status 0 when every check holds.

local lua_dir, core_dir = ...
assert(lua_dir, "usage: roundtrip.lua LUA_DIR [CORE_DIR]")
if core_dir == nil or core_dir == "" then core_dir = lua_dir end
package.cpath = core_dir .. "/?.so;" .. lua_dir .. "/?.so"
local core_file = assert(package.searchpath("skynet.cluster.core", package.cpath))
local testmsg = require "testmsg"
local core = require "skynet.cluster.core"

local MULTI = 0x8000
local checks, failures = 0, {}

local function check(cond, what)
    checks = checks + 1
    if not cond then failures[#failures + 1] = what end
    return cond
end

local seed = 12345
local function rand(n) -- deterministic LCG, 0 .. n-1
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n
end

-- Payloads: slices of a pseudo-random pool repeated with a prime period (7919 bytes), so that a
-- part misplaced by a multiple of 0x8000 bytes still changes the bytes (cheap under valgrind).
local POOL
do
    local t = {}
    for i = 1, 7919 do t[i] = string.char(rand(256)) end
    POOL = table.concat(t)
end
local function payload(n)
    local off = rand(#POOL)
    local s = POOL:sub(off + 1) .. POOL:rep((n + off) // #POOL + 1)
    return s:sub(1, n)
end

-- Cuts a frame: checks the 2-byte big-endian length prefix, returns the body.
local function body_of(frame, what)
    local n = (frame:byte(1) << 8) | frame:byte(2)
    check(#frame >= 2 and n == #frame - 2, what .. ": length prefix " .. n .. " for " .. (#frame - 2) .. " body bytes")
    return frame:sub(3)
end

local function as_list(frames)
    if type(frames) == "string" then return { frames } end
    return frames
end

-- Decodes a request sent as packrequest/packpush frames, as clusteragent does.
local function decode_request(frames, what)
    frames = as_list(frames)
    local first = body_of(frames[1], what)
    local a1, a2, a3, a4, a5, a6 = core.unpackrequest(first)
    if a3 ~= nil then -- single frame: addr, session, ptr, sz [, nil, true for a push]
        check(#frames == 1, what .. ": single frame expected")
        local data = testmsg.read_free(a3, a4)
        return { addr = a1, session = a2, data = data, push = a6 == true, multi = false }
    end
    -- multi-part header: addr, session, nil, total, true, is_push
    local total, is_push = a4, a6
    check(a5 == true, what .. ": header padding flag")
    local t = {}
    core.append(t, nil, total)
    for i = 2, #frames do
        local b = body_of(frames[i], what)
        check(#b - 5 <= MULTI, what .. ": part larger than MULTI")
        local f, s, ptr, sz, padding = core.unpackrequest(b)
        check(f == false and s == a2, what .. ": part " .. i .. " session")
        check(padding == (i < #frames), what .. ": part " .. i .. " padding flag")
        core.append(t, ptr, sz)
    end
    local ptr, sz = core.concat(t)
    local data = ptr and testmsg.read_free(ptr, sz)
    check(sz == total, what .. ": concat size")
    return { addr = a1, session = a2, data = data, push = is_push, multi = true }
end

local function decode_response(frames, what)
    frames = as_list(frames)
    local session, ok, data = core.unpackresponse(body_of(frames[1], what))
    if #frames == 1 then return session, ok, data, false end
    local total = data
    local parts = {}
    for i = 2, #frames do
        local s, o, d, padding = core.unpackresponse(body_of(frames[i], what))
        check(s == session and o == true, what .. ": response part " .. i)
        check((padding == true) == (i < #frames), what .. ": response part " .. i .. " padding")
        parts[#parts + 1] = d
    end
    local all = table.concat(parts)
    check(#all == total, what .. ": response total " .. #all .. " vs " .. tostring(total))
    return session, ok, all, true
end

local sizes = { 0, 1, 100, MULTI - 1, MULTI, MULTI + 1, 2 * MULTI - 1, 2 * MULTI, 2 * MULTI + 1, 100000, 200 * 1024 }
for _ = 1, 8 do sizes[#sizes + 1] = rand(200 * 1024 + 1) end

local names = { 0x01000010, 0xffffffff, ".echo", "@x", string.rep("n", 255) }

for _, size in ipairs(sizes) do
    local data = payload(size)
    for _, addr in ipairs(names) do
        for _, push in ipairs({ false, true }) do
            local session = 1 + rand(0x7fffffff)
            local shown = (type(addr) == "string" and #addr > 20) and ("<name of " .. #addr .. " bytes>") or tostring(addr)
            local what = string.format("%s size %d addr %s session %d", push and "push" or "request", size, shown, session)
            local p, sz = testmsg.new(data)
            testmsg.disown(p) -- packrequest/packpush free it
            -- single: frame, next session; multi-part: header frame, next session, {part frames}
            local frames, nextsession, parts = (push and core.packpush or core.packrequest)(addr, session, p, sz)
            check(nextsession == (session == 0x7fffffff and 1 or session + 1), what .. ": next session")
            check((parts ~= nil) == (size >= MULTI), what .. ": multi-part iff size >= 0x8000")
            if parts then
                check(#parts == (size + MULTI - 1) // MULTI, what .. ": part count " .. #parts)
                frames = { frames, table.unpack(parts) }
            end
            local r = decode_request(frames, what)
            check(r.data == data, what .. ": payload bytes")
            check(r.push == push, what .. ": push flag")
            if type(addr) == "number" then check(r.addr == addr, what .. ": addr") else check(r.addr == addr, what .. ": name") end
            -- A single-frame push carries session 0; everything else carries the session.
            check(r.session == ((push and not r.multi) and 0 or session), what .. ": session on the wire " .. tostring(r.session))
        end
    end
    for _, ok in ipairs({ true, false }) do
        local session = rand(0x100000000)
        local what = string.format("response ok=%s size %d session %d", tostring(ok), size, session)
        local frames = core.packresponse(session, ok, data)
        local multi = ok and size > MULTI
        check((type(frames) == "table") == multi, what .. ": multi-part iff ok and size > 0x8000")
        local s, o, d = decode_response(frames, what)
        check(s == session, what .. ": session")
        check(o == ok, what .. ": ok flag")
        local want = ok and data or data:sub(1, MULTI)
        check(d == want, what .. ": payload bytes")
        -- the same with a lightuserdata message (not freed by packresponse)
        local p, sz = testmsg.new(data)
        local frames2 = core.packresponse(session, ok, p, sz)
        testmsg.free_own(p)
        local same = type(frames2) == type(frames)
        if same and type(frames) == "table" then
            for i = 1, math.max(#frames, #frames2) do same = same and frames[i] == frames2[i] end
        elseif same then
            same = frames == frames2
        end
        check(same, what .. ": string and lightuserdata payloads give the same frames")
    end
end

for _, n in ipairs({ 0, 1, 30, MULTI }) do
    local tag = payload(n)
    local frame = core.packtrace(tag)
    check(core.unpackrequest(body_of(frame, "trace " .. n)) == tag, "trace tag of " .. n .. " bytes")
end

print(string.format("roundtrip: %s, module %s", _VERSION, core_file))
for i, f in ipairs(failures) do
    if i > 30 then print(string.format("... and %d more", #failures - 30)); break end
    print("FAIL " .. f)
end
local live = testmsg.live()
if live ~= 0 then print(string.format("harness error: %d test buffers neither freed nor handed over", live)) end
print(string.format("%d checks, %d failed", checks, #failures))
os.exit((#failures == 0 and live == 0) and 0 or 1, true)
