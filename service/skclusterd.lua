-- Launcher of the native cluster service (skynet-cluster, issue 7): one per process,
-- started by lualib/skynet/cluster.lua through skynet.uniqueservice("skclusterd").
--
-- It launches the C service `skcluster` (cservice/skcluster.so = libskynet_cluster.so),
-- teaches it the error texts stock's clusteragent sends (they carry this process's
-- skynet.lua path and line numbers), loads the `cluster` config file as stock's clusterd
-- does, and keeps cluster.proxy's proxy services. It is not on the call path.

local skynet = require "skynet"
require "skynet.manager"

local CMD_RELOAD, CMD_PROBE, CMD_TEXTS = 1, 6, 7

local skcluster
local proxy = {}
local command = {}

function command.handle()
	return skcluster
end

function command.proxy(node, name)
	if name == nil then
		node, name = node:match "^([^@.]+)([@.].+)"
		if name == nil then
			error ("Invalid name " .. tostring(node))
		end
	end
	local fullname = node .. "." .. name
	local p = proxy[fullname]
	if p == nil then
		p = skynet.newservice("skclusterproxy", node, name)
		if proxy[fullname] then	-- created meanwhile
			skynet.kill(p)
			p = proxy[fullname]
		else
			proxy[fullname] = p
		end
	end
	return p
end

skynet.start(function()
	skcluster = skynet.launch("skcluster", "")
	if not skcluster then
		error "cannot launch the C service skcluster: see its log lines above (a bad cluster_* key in the skynet config), or put libskynet_cluster.so on cpath as skcluster.so (README, Native engine inside skynet)"
	end
	-- What a stock caller sees when its target raised: skynet.lua's own "call failed".
	local _, call_failed = pcall(skynet.call, skcluster, "lua", CMD_PROBE)
	-- What stock's clusteragent answers for an unknown local name or a dead address.
	local _, invalid = pcall(skynet.rawcall, ".skcluster\1no-such-service", "lua", "")
	-- What this skynet's clusterd answers for cluster.open(nodename): skynet 1.x answers
	-- the node's host and port, master the name and nil. Read off its own source.
	local open_answers_address = false
	local clusterd = package.searchpath("clusterd", skynet.getenv "luaservice" or "")
	local f = clusterd and io.open(clusterd)
	if f then
		local src = f:read "*a"
		f:close()
		local listen = src:match "function command%.listen(.-)\nend"
		open_answers_address = listen ~= nil and listen:find("string.match(address", 1, true) ~= nil
	end
	skynet.call(skcluster, "lua", CMD_TEXTS, tostring(call_failed), tostring(invalid), open_answers_address)
	-- The `cluster` config file, as stock's clusterd reads it at start.
	local config_name = skynet.getenv "cluster"
	if config_name then
		local tmp = {}
		local f = assert(io.open(config_name))
		local source = f:read "*a"
		f:close()
		assert(load(source, "@" .. config_name, "t", tmp))()
		skynet.call(skcluster, "lua", CMD_RELOAD, tmp)
	end
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = assert(command[cmd])
		skynet.ret(skynet.pack(f(...)))
	end)
end)
