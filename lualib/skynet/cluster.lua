-- skynet.cluster over the native engine (skynet-cluster, issue 7).
--
-- A drop-in for stock lualib/skynet/cluster.lua: put this directory first on lua_path
-- (lua_path = "<repo>/lualib/?.lua;" .. stock) and make cservice/skcluster.so a copy of
-- (or a symlink to) libskynet_cluster.so. Same functions, same return values, same
-- errors. The work is done by the C service `skcluster` (src/skynet), launched once per
-- process by service/skclusterd.lua:
--
--   cluster.call  = the request goes to the engine from the caller's own thread
--                   (skcluster.direct, src/skynet/direct.rs); one answer message comes
--                   back (PTYPE_RESPONSE with the remote payload, or PTYPE_ERROR: the
--                   caller then raises skynet.lua's own "call failed", as with stock).
--   cluster.send  = the push goes to the engine from the caller's thread: no message.
--
-- Where the direct functions cannot be used (a traced coroutine, whose tag skynet.call
-- sends ahead as a PTYPE_TRACE message; an address that is neither a number nor a
-- string; a skynet.lua without yield_call) a call or push is one skynet message to
-- skcluster instead: skynet.pack(node, address, args...); skcluster forwards the bytes
-- after the first two values unchanged as the request payload. Control messages start
-- with an integer command (see src/skynet/mod.rs, `Cmd`).

local skynet = require "skynet"

local cluster = {}
local skcluster	-- handle of the C service
local skclusterd	-- the Lua launcher (uniqueservice)

local CMD_RELOAD, CMD_LISTEN, CMD_REGISTER, CMD_UNREGISTER, CMD_NODESTATE = 1, 2, 3, 4, 5
local CMD_LINKEVENTS, CMD_HEALTH, CMD_RELOADTLS = 9, 10, 11

-- Stock keeps, per calling service, the clustersender of each node it has reached once;
-- a service that asks for a node with no address (absent with __nowaiting, or marked
-- down) before that gets no sender and raises what skynet.call(nil, ...) raises.
-- had_sender mirrors that cache so that the error texts match.
local had_sender = {}

local function call_failed(node, err)
	if not had_sender[node] then
		local state = skynet.call(skcluster, "lua", CMD_NODESTATE, node)
		if state ~= "up" then
			-- raises exactly what stock's cluster.call raises here
			return skynet.call(nil, "lua", "req")
		end
		had_sender[node] = true
	end
	error(err, 0)
end

local function ret(node, ok, ...)
	if ok then
		if not had_sender[node] then
			had_sender[node] = true
		end
		return ...
	end
	return call_failed(node, ...)
end

-- The direct path (set up in skynet.init below): skcluster.direct's call/send, skynet.lua's
-- own yield_call (the wait of skynet.call: same session bookkeeping, same "call failed"
-- error), this service's handle.
local direct_call, direct_send, yield_call, self_handle
local genid, pack, unpack = skynet.genid, skynet.pack, skynet.unpack
local tracetag = skynet.tracetag or function() end	-- skynet versions without tracing

local function call_direct(node, address, ...)
	local session = genid()
	if direct_call(node, address, session, self_handle, pack(...)) then
		return unpack(yield_call(skcluster, session))
	end
	-- skcluster is gone: the message path fails the way it always did
	direct_call, direct_send = nil, nil
	return skynet.call(skcluster, "lua", node, address, ...)
end

local function direct_ok(node, address)
	local t = type(address)
	return direct_call and type(node) == "string" and (t == "number" or t == "string")
end

function cluster.call(node, address, ...)
	if direct_ok(node, address) and not tracetag() then
		return ret(node, pcall(call_direct, node, address, ...))
	end
	return ret(node, pcall(skynet.call, skcluster, "lua", node, address, ...))
end

function cluster.send(node, address, ...)
	if direct_ok(node, address) then
		if direct_send(node, address, pack(...)) then
			return
		end
		direct_call, direct_send = nil, nil
	end
	skynet.send(skcluster, "lua", node, address, ...)
end

function cluster.open(port, maxclient)
	if type(port) == "string" then
		return skynet.call(skcluster, "lua", CMD_LISTEN, port, nil, maxclient)
	else
		return skynet.call(skcluster, "lua", CMD_LISTEN, "0.0.0.0", port, maxclient)
	end
end

local function loadconfig()
	local tmp = {}
	local config_name = skynet.getenv "cluster"
	if config_name then
		local f = assert(io.open(config_name))
		local source = f:read "*a"
		f:close()
		assert(load(source, "@" .. config_name, "t", tmp))()
	end
	return tmp
end
cluster.loadconfig = loadconfig

function cluster.reload(config)
	skynet.call(skcluster, "lua", CMD_RELOAD, config or loadconfig())
end

function cluster.proxy(node, name)
	return skynet.call(skclusterd, "lua", "proxy", node, name)
end

function cluster.snax(node, name, address)
	local snax = require "skynet.snax"
	if not address then
		address = cluster.call(node, ".service", "QUERY", "snaxd", name)
	end
	local handle = skynet.call(skclusterd, "lua", "proxy", node, address)
	return snax.bind(handle, name)
end

function cluster.register(name, addr)
	assert(type(name) == "string")
	assert(addr == nil or type(addr) == "number")
	return skynet.call(skcluster, "lua", CMD_REGISTER, name, addr)
end

function cluster.unregister(name)
	assert(type(name) == "string")
	return skynet.call(skcluster, "lua", CMD_UNREGISTER, name)
end

function cluster.query(node, name)
	return ret(node, pcall(skynet.call, skcluster, "lua", node, 0, name))
end

-- Not in stock's API: the handle of the C service (for tools and tests).
function cluster.native_handle()
	return skcluster
end

-- Not in stock's API: link events. cluster.linkevent(f) calls f(event) in this service
-- for every cluster link that goes up or down, starting with an "up" for each link open
-- now; cluster.linkevent(nil) stops; a second call replaces f (and starts again with the
-- links open then). event = {
--   up = true | false,
--   dir = "outbound" (a link to a node of the cluster config) | "inbound" (a peer
--         connected to one of this node's listeners),
--   node = the node's name (outbound only),
--   peer = "ip:port" of the other end,
--   reason = why it went down (down only: "peer closed the connection",
--            "heartbeat: no answer to a probe within 5s", "connect to ... failed: ...",
--            "node address changed", ...),
--   link = a number naming the link (its up and down carry the same one),
-- }
-- A failed connection attempt is a down without an up before it. f runs in a coroutine
-- of its own (it may call and wait); an error in it is logged and the next event still
-- comes. Events are long-polled from skcluster (one call answered when events come, as
-- sharedata's monitor does): the service gets them as messages, nothing blocks skcluster.
local linkevent_f, linkevent_gen = nil, 0

local function linkevent_loop(gen)
	while gen == linkevent_gen do
		local ok, events, lost = pcall(skynet.call, skcluster, "lua", CMD_LINKEVENTS, "poll")
		if not ok or events == nil then
			return
		end
		if lost > 0 then
			skynet.error(string.format("cluster.linkevent: %d link events lost (this service did not keep up)", lost))
		end
		for i = 1, #events do
			if gen ~= linkevent_gen then
				return
			end
			local ok, err = xpcall(linkevent_f, debug.traceback, events[i])
			if not ok then
				skynet.error("cluster.linkevent: " .. tostring(err))
			end
		end
	end
end

function cluster.linkevent(f)
	assert(f == nil or type(f) == "function", "cluster.linkevent(f): f must be a function or nil")
	linkevent_gen = linkevent_gen + 1
	linkevent_f = f
	if f then
		skynet.call(skcluster, "lua", CMD_LINKEVENTS, "start")
		skynet.fork(linkevent_loop, linkevent_gen)
	else
		skynet.call(skcluster, "lua", CMD_LINKEVENTS, "stop")
	end
end

-- Not in stock's API: the node's cluster health, a table of counters and limits: links,
-- max_links, reassembly_bytes, max_reassembly_bytes, send_bytes, max_send_bytes,
-- late_answers, refused_links, over_budget, heartbeat_timeouts, expired,
-- protocol_errors, accept_stalls, refused_not_allowed (cluster_allow),
-- refused_per_source (cluster_max_links_per_source), refused_exposure (cluster_expose),
-- tls_links, refused_plain, tls_failures (cluster_tls) (the engine's), inflight (inbound
-- calls waiting for their target), abandoned (inbound calls whose link closed first),
-- link_subscribers.
function cluster.health()
	return skynet.call(skcluster, "lua", CMD_HEALTH)
end

-- Not in stock's API: reads the TLS certificate files (cluster_tls_ca, cluster_tls_cert,
-- cluster_tls_key) again, without a restart; links made from now on use them. Returns
-- true, or false and the reason (a file missing or unusable: the certificates in use stay).
-- With cluster_tls off there is nothing to read: true.
function cluster.reloadtls()
	return skynet.call(skcluster, "lua", CMD_RELOADTLS)
end

-- skcluster.direct lives in the C service's own file (found on skynet's cpath, as skynet
-- found it); yield_call is an upvalue of skynet.rawcall. Without either, every call and
-- push goes as a message to skcluster (same results, one more message).
local function setup_direct()
	local path = package.searchpath("skcluster", skynet.getenv "cpath" or "")
	local open = path and package.loadlib(path, "luaopen_skcluster_direct")
	if not open then
		return
	end
	local ok, m = pcall(open)
	if not ok or type(m) ~= "table" then
		return
	end
	for i = 1, 64 do
		local name, v = debug.getupvalue(skynet.rawcall, i)
		if name == nil then
			break
		elseif name == "yield_call" and type(v) == "function" then
			yield_call = v
		end
	end
	if yield_call and genid then
		self_handle = skynet.self()
		direct_call, direct_send = m.call, m.send
	end
end

skynet.init(function()
	skclusterd = skynet.uniqueservice("skclusterd")
	skcluster = skynet.call(skclusterd, "lua", "handle")
	setup_direct()
end)

return cluster
