-- make ab, server node: @localpush measures pushes into a sink of its own from this
-- service (skynet.send inside the node, no cluster) for the given seconds, and answers
-- pushes/s: the rate one Lua sink takes in, which bounds any cluster push path.
local skynet = require "skynet"
local measure_pushes = require "abpush"

skynet.start(function()
	local sink = skynet.newservice("abecho", "sink")
	skynet.dispatch("lua", function(_, _, duration)
		local sent, secs = measure_pushes(function(i)
			skynet.send(sink, "lua", i)
		end, function()
			return skynet.call(sink, "lua")
		end, duration)
		skynet.retpack(sent / secs)
	end)
end)
