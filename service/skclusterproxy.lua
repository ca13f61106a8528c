-- cluster.proxy's service over the native engine (skynet-cluster, issue 7): a local
-- address that forwards "lua" and "snax" messages to `address` on cluster node `node`.
-- Calls stay calls (the answer message is passed back without a copy), sends stay
-- pushes.

local skynet = require "skynet"
require "skynet.manager"	-- skynet.forward_type

local node, address = ...
address = tonumber(address) or address

skynet.register_protocol {
	name = "system",
	id = skynet.PTYPE_SYSTEM,
	unpack = function (...) return ... end,
}

-- Forward mode: these messages are not freed by skynet after dispatch; we own them.
local forward_map = {
	[skynet.PTYPE_SNAX] = skynet.PTYPE_SYSTEM,
	[skynet.PTYPE_LUA] = skynet.PTYPE_SYSTEM,
	[skynet.PTYPE_RESPONSE] = skynet.PTYPE_RESPONSE,	-- answers are passed on as they are
}

skynet.forward_type(forward_map, function()
	local skclusterd = skynet.uniqueservice("skclusterd")
	local skcluster = skynet.call(skclusterd, "lua", "handle")
	local head = skynet.packstring(node, address)
	skynet.dispatch("system", function (session, source, msg, sz)
		local req = head .. skynet.tostring(msg, sz)
		skynet.trash(msg, sz)
		if session == 0 then
			skynet.rawsend(skcluster, "lua", req)
		else
			skynet.ret(skynet.rawcall(skcluster, "lua", req))
		end
	end)
end)
