-- The echo service of the A/B harness and of ab/semantics.lua (same commands as the
-- golden transcripts' echo service): echo returns its arguments, raise raises, push
-- records {len, nargs}, getpushes returns and clears the records, count returns the
-- number of pushes seen, sink counts pushes without recording them.
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
function command.getpushes()
	local r = pushes
	pushes = {}
	return r
end

skynet.start(function()
	skynet.dispatch("lua", function(session, _, cmd, ...)
		local f = command[cmd]
		if session == 0 then
			if f then f(...) end
			return
		end
		skynet.retpack(f(...))
	end)
end)
