-- Exercises the public API of skynet.cluster on one node that calls itself, and prints
-- every result or error text. Run under stock and under the native module and diff the
-- output (ab/semantics.sh does both).
local skynet = require "skynet"
local cluster = require "skynet.cluster"
require "skynet.manager"

local port = tonumber(skynet.getenv "sem_port")

local function show(...)
	local t = table.pack(...)
	for i = 1, t.n do
		local v = t[i]
		if type(v) == "string" and #v > 40 then v = "str#" .. #v end
		if type(v) == "table" then
			local parts = {}
			for _, e in ipairs(v) do parts[#parts+1] = "{" .. table.concat(e, ",") .. "}" end
			v = "[" .. table.concat(parts, " ") .. "]"
		end
		t[i] = tostring(v)
	end
	return table.concat(t, " ", 1, t.n)
end

-- One write per line (print writes the text and the newline separately, so a log line from
-- another thread could land between them and split the line).
local function out(line)
	io.stdout:write(line .. "\n")
	io.stdout:flush()
end

local function try(label, f, ...)
	local r = table.pack(pcall(f, ...))
	if r[1] then
		out(label .. ": " .. show(table.unpack(r, 1, r.n)))
	else
		out(label .. ": false " .. tostring(r[2]))
	end
end

skynet.start(function()
	local echo = skynet.newservice("abecho")
	skynet.name(".echo", echo)
	cluster.reload { self = "127.0.0.1:" .. port, down = false, __nowaiting = true }
	try("register", cluster.register, "echo", echo)
	try("register again", cluster.register, "echo", echo)
	try("open", cluster.open, "self")
	try("open numeric", function() local a, p = cluster.open(0); return a, math.type(p), p ~= 0 end)
	try("open unknown node", cluster.open, "nosuchnode")
	try("reload bad address", cluster.reload, { x = 1 })
	try("call int", cluster.call, "self", "@echo", "echo", 42)
	try("call multi", cluster.call, "self", ".echo", "echo", 1, "two", 3.5, true, nil)
	for _, n in ipairs { 0, 100, 32760, 32768, 65536, 100000, 1048576 } do
		local s = string.rep("x", n)
		local ok, r = pcall(cluster.call, "self", "@echo", "echo", s)
		out("call str " .. n .. ": " .. tostring(ok) .. " " .. tostring(r == s))
	end
	try("call numeric", cluster.call, "self", echo, "echo", "n")
	try("call hex name", cluster.call, "self", skynet.address(echo), "echo", "hex")
	try("query", function() return cluster.query("self", "echo") == echo end)
	try("query missing", cluster.query, "self", "nosuch")
	try("call missing @", cluster.call, "self", "@nosuch", "echo", 1)
	try("call missing .", cluster.call, "self", ".nosuch", "echo", 1)
	try("call raise", cluster.call, "self", "@echo", "raise", "boom")
	try("call dead numeric", cluster.call, "self", 0x00ffffff, "echo", 1)
	cluster.send("self", "@echo", "push", "small")
	cluster.send("self", "@echo", "push", string.rep("y", 70000), 1, 2)
	skynet.sleep(20)
	try("getpushes", cluster.call, "self", "@echo", "getpushes")
	try("call down", cluster.call, "down", "@echo", "echo", 1)
	try("call absent (nowaiting)", cluster.call, "absent", "@echo", "echo", 1)
	try("send absent", cluster.send, "absent", "@echo", "push", "lost")
	local p = cluster.proxy("self", "@echo")
	try("proxy call", skynet.call, p, "lua", "echo", "via proxy")
	try("proxy big", function() return #skynet.call(p, "lua", "echo", string.rep("z", 200000)) end)
	skynet.send(p, "lua", "push", "proxied")
	skynet.sleep(20)
	try("getpushes 2", cluster.call, "self", "@echo", "getpushes")
	try("proxy same", function() return cluster.proxy("self", "@echo") == p end)
	try("proxy bad", cluster.proxy, "nonsense")
	try("unregister", cluster.unregister, "echo")
	try("call unregistered", cluster.call, "self", "@echo", "echo", 1)
	try("unregister again", cluster.unregister, "echo")
	-- absent node without __nowaiting: the call waits for a reload
	cluster.reload { __nowaiting = false }
	skynet.fork(function()
		skynet.sleep(30)
		cluster.reload { late = "127.0.0.1:" .. port }
	end)
	try("call waits for reload", cluster.call, "late", ".echo", "echo", "late")
	cluster.reload { self = false }
	try("call after marked down", cluster.call, "self", ".echo", "echo", 1)
	out("done")
	skynet.abort()
end)
