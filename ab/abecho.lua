-- The echo service of the A/B harness and of ab/semantics.lua (same commands as the
-- golden transcripts' echo service): echo returns its arguments, raise raises, push
-- records {len, nargs}, getpushes returns and clears the records, count returns the
-- number of pushes seen, sink counts pushes without recording them, spin busy-loops for
-- the given milliseconds. Anything else is
-- echoed back whole (what `skynet-cluster bench` expects of @echo). Started with the
-- argument "sink", the service only counts pushes and answers calls with the count
-- (@sink of `skynet-cluster bench`).
local skynet = require "skynet"

local pushes = {}
local count = 0
local command = {}

function command.echo(...) return ... end
function command.raise(msg) error(msg) end
function command.push(s, ...)
	pushes[#pushes + 1] = { #tostring(s), select("#", ...) + 1 }
end
function command.sink() count = count + 1 end
function command.count() return count end
-- busy for `ms` milliseconds without yielding (a handler stuck in a loop)
function command.spin(ms)
	local t = skynet.now()
	while skynet.now() - t < ms // 10 do end
	return ms
end
function command.getpushes()
	local r = pushes
	pushes = {}
	return r
end

local mode = ...

skynet.start(function()
	if mode == "sink" then
		skynet.dispatch("lua", function(session)
			if session == 0 then
				count = count + 1
			else
				skynet.retpack(count)
			end
		end)
		return
	end
	skynet.dispatch("lua", function(session, _, cmd, ...)
		-- (no table lookup with a long string: Lua would hash all of it)
		local f = type(cmd) == "string" and #cmd <= 16 and command[cmd]
		if not f then
			if session ~= 0 then
				skynet.retpack(cmd, ...)
			end
			return
		end
		if session == 0 then
			if f then f(...) end
			return
		end
		skynet.retpack(f(...))
	end)
end)
