-- A/B harness, server node: @echo and @sink (see abecho.lua) and @localpush (ablocal.lua)
-- on cluster node "server".
local skynet = require "skynet"
local cluster = require "skynet.cluster"

skynet.start(function()
	local echo = skynet.newservice("abecho")
	local sink = skynet.newservice("abecho", "sink")
	cluster.register("echo", echo)
	cluster.register("sink", sink)
	cluster.register("localpush", skynet.newservice("ablocal"))
	cluster.reload { server = skynet.getenv "ab_server" }
	cluster.open "server"
	local f = assert(io.open(skynet.getenv "ab_ready", "w"))
	f:write "ready\n"
	f:close()
end)
