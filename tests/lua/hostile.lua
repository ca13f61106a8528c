-- Bad input against skynet.cluster.core, beyond the golden recording: the places where this module
-- deliberately differs from stock lua-cluster.c (which would crash, read out of bounds, free a full
-- userdata, or leak), and a random-bytes sweep of the decoders. Each case asserts the exact error
-- text (or the exact "returns nothing") and that the module did not lose the buffer it was handed:
-- under valgrind (make test-lua-leak) testmsg.leaked() must not grow across a case.
--
-- Usage: <lua> tests/lua/hostile.lua LUA_DIR     (LUA_DIR holds skynet/cluster/core.so, testmsg.so)

local lua_dir = assert(..., "usage: hostile.lua LUA_DIR")
package.cpath = lua_dir .. "/?.so"
local core = require "skynet.cluster.core"
local testmsg = require "testmsg"

local failures, checks = 0, 0
local function check(cond, what)
    checks = checks + 1
    if not cond then
        failures = failures + 1
        print("FAIL: " .. what)
    end
end

-- Runs f under pcall from a chunk named "hostile" (so errors carry "hostile:1: "), returns
-- ok, and the packed results or the error.
local call = load("return function(f, ...) return table.pack(pcall(f, ...)) end", "=hostile")()
local function expect_error(name, text, f, ...)
    local r = call(f, ...)
    check(r[1] == false, name .. ": expected an error, got success")
    if r[1] == false then
        check(r[2] == text, string.format("%s: error %q, expected %q", name, tostring(r[2]), text))
    end
end

local function leaked() return testmsg.leaked() end
local base_leak = leaked()
local function no_new_leak(name)
    testmsg.scrub(64)
    local now = leaked()
    if now ~= nil then
        check(now == base_leak, string.format("%s: valgrind counts %d newly lost bytes", name, now - base_leak))
        base_leak = now
    end
end

local stdout = io.stdout -- a full userdata
local NULL = testmsg.null()

-- packrequest / packpush: the message is ours from the pointer check on, freed on every error.
for _, fname in ipairs { "packrequest", "packpush" } do
    local f = core[fname]
    expect_error(fname .. " full userdata", "Invalid request message", f, 1, 1, stdout, 4)
    expect_error(fname .. " NULL", "Invalid request message", f, 1, 1, NULL, 4)
    local p, sz = testmsg.new("abcd")
    expect_error(fname .. " negative size", "Invalid request size -1", f, 1, 1, p, -1)
    testmsg.disown(p)
    p, sz = testmsg.new("abcd")
    -- Argument errors come from the host's lauxlib, which names the function by its place
    -- in package.loaded when it is called straight from pcall.
    expect_error(fname .. " size not a number",
        "bad argument #4 to 'skynet.cluster.core." .. fname .. "' (number expected, got string)", f, 1, 1, p, "x")
    testmsg.disown(p)
    p, sz = testmsg.new("abcd")
    expect_error(fname .. " session not a number",
        "bad argument #2 to 'skynet.cluster.core." .. fname .. "' (number expected, got string)", f, 1, "abc", p, sz)
    testmsg.disown(p)
    p, sz = testmsg.new("abcd")
    expect_error(fname .. " bad name", "name is not a string, it's a table", f, {}, 1, p, sz)
    testmsg.disown(p)
    no_new_leak(fname)
end

-- append: the lightuserdata is freed on every error after it is recognised.
do
    local t = {}
    expect_error("append full userdata", "Need lightuserdata", core.append, t, stdout, 3)
    expect_error("append NULL", "Need lightuserdata", core.append, t, NULL, 3)
    local p = testmsg.new("abc")
    expect_error("append negative size", "Invalid message size -1", core.append, t, p, -1)
    testmsg.disown(p)
    p = testmsg.new("abc")
    expect_error("append size not a number",
        "bad argument #3 to 'skynet.cluster.core.append' (number expected, got no value)", core.append, t, p)
    testmsg.disown(p)
    check(#t == 0, "append errors leave the table unchanged")
    -- A __newindex that raises: the buffer was already copied and freed.
    local guarded = setmetatable({}, { __newindex = function() error("no writes", 0) end })
    p = testmsg.new("abc")
    expect_error("append __newindex raises", "no writes", core.append, guarded, p, 3)
    testmsg.disown(p)
    no_new_leak("append")
end

-- unpackrequest: never frees its input; sizes the body cannot have are errors, not crashes.
do
    expect_error("unpackrequest NULL", "Invalid cluster message (NULL pointer)", core.unpackrequest, NULL, 5)
    for _, c in ipairs {
        { "\0", "Invalid cluster message (size=-1)" },
        { "\4", "Invalid cluster message (size=-1)" }, -- stock would read 4 GiB here
        { "\1", "Invalid cluster message size -1 (multi req must be 13)" },
        { "\2", "Invalid cluster multi part message" },
        { "\128", "Invalid cluster message (size=-1)" },
        { "\255", "Invalid req package type -1" },
    } do
        local p = testmsg.new(c[1])
        expect_error("unpackrequest negative size type " .. c[1]:byte(), c[2], core.unpackrequest, p, -1)
        testmsg.free_own(p)
    end
    no_new_leak("unpackrequest")
end

-- packresponse: never frees; refuses sizes it cannot read.
do
    expect_error("packresponse NULL with size", "Invalid response message (size=5)", core.packresponse, 1, true, NULL, 5)
    local p = testmsg.new("abc")
    expect_error("packresponse negative size", "Invalid response message (size=-1)", core.packresponse, 1, true, p, -1)
    testmsg.free_own(p)
    expect_error("packresponse full userdata past its end", "Invalid response message (size=1000000)",
        core.packresponse, 1, true, stdout, 1000000)
    no_new_leak("packresponse")
end

-- concat: nothing on a negative total; a raising __index loses nothing (nothing is allocated yet).
do
    local r = table.pack(core.concat({ -1 }))
    check(r.n == 0, "concat negative total returns nothing")
    local t = setmetatable({ 3 }, { __index = function() error("no reads", 0) end })
    expect_error("concat __index raises", "no reads", core.concat, t)
    no_new_leak("concat")
end

-- Random bytes through both decoders: an error or a result, never a crash; returned buffers freed.
do
    math.randomseed(12345)
    local function rnd(n) return math.random(0, n - 1) end
    local decoded, rejected = 0, 0
    for _ = 1, 20000 do
        local len = rnd(24)
        local bytes = {}
        for i = 1, len do bytes[i] = string.char(rnd(256)) end
        if len > 0 and rnd(2) == 0 then bytes[1] = string.char(({ 0, 1, 2, 3, 4, 0x41, 0x80, 0x81, 0xc1 })[rnd(9) + 1]) end
        local s = table.concat(bytes)
        local r = table.pack(pcall(core.unpackrequest, s))
        if r[1] then
            decoded = decoded + 1
            for i = 2, r.n do
                if testmsg.islight(r[i]) then testmsg.free(r[i]) end
            end
        else
            rejected = rejected + 1
            check(type(r[2]) == "string", "unpackrequest error is a string")
        end
        pcall(core.unpackresponse, s)
    end
    check(decoded > 1000 and rejected > 1000, string.format("random sweep: %d decoded, %d rejected", decoded, rejected))
    no_new_leak("random sweep")
end

check(testmsg.live() == 0, "every buffer made by testmsg.new was freed or handed over: live=" .. testmsg.live())
print(string.format("hostile: %s, %d checks, %d failed%s", _VERSION, checks, failures,
    leaked() and " (leak counts checked under valgrind)" or ""))
os.exit(failures == 0 and 0 or 1, true)
