-- Link lifecycle against stock skynet (ab/lifecycle.sh, issue 12). Two roles:
--
-- lc_role = "stock": a stock node "stock" serving @echo, plus a listener opened with
--   cluster.open(port, 3) (stock's gate and its maxclient).
-- lc_role = "native": a native node with cluster_heartbeat set, calling the stock node:
--   cluster.linkevent reports the link up; the idle link is probed (the stock node answers
--   "name not found") and stays up; maxclient keeps as many clients on either node; the
--   stock node frozen (SIGSTOP) makes the pending call fail by the heartbeat and the link
--   go down with that reason; thawed, the next call reconnects. Prints one line per check
--   (ab/lifecycle.sh reads them), then "done".
local skynet = require "skynet"
local cluster = require "skynet.cluster"
local socket = require "skynet.socket"
require "skynet.manager"	-- skynet.abort

local role = skynet.getenv "lc_role"

-- Clients kept by the listener at `port`: four connect, those still open after 0.5 s.
local function kept(port)
	local ids = {}
	for i = 1, 4 do
		ids[i] = socket.open("127.0.0.1", port)
		skynet.sleep(5)
	end
	skynet.sleep(50)
	local n = 0
	for _, id in ipairs(ids) do
		if id and not socket.disconnected(id) then
			n = n + 1
		end
		if id then
			socket.close(id)
		end
	end
	return n
end

local function stock()
	cluster.register("echo", skynet.newservice("abecho"))
	cluster.reload { stock = "127.0.0.1:" .. skynet.getenv "lc_port" }
	cluster.open "stock"
	cluster.open(tonumber(skynet.getenv "lc_stock_max"), 3)
	local f = assert(io.open(skynet.getenv "lc_ready", "w"))
	f:write "ready\n"
	f:close()
end

local function native()
	local events = {}
	cluster.linkevent(function(e)
		print(string.format("event %s %s %s %s", e.up and "up" or "down", e.dir, e.node or "-", e.reason or ""))
		events[#events + 1] = e
	end)
	local function downs(node)
		local n, last = 0, nil
		for _, e in ipairs(events) do
			if not e.up and e.node == node then
				n, last = n + 1, e
			end
		end
		return n, last
	end
	local beat = tonumber(skynet.getenv "cluster_heartbeat")
	cluster.reload { stock = "127.0.0.1:" .. skynet.getenv "lc_port" }
	print("call", cluster.call("stock", "@echo", "echo", "hello"))
	print("link up event", #events == 1 and events[1].up and events[1].node == "stock")
	-- Idle for four heartbeat intervals: each probe is answered, the link stays up.
	skynet.sleep(math.floor(beat * 400))
	local h = cluster.health()
	print("idle link kept", h.heartbeat_timeouts == 0 and downs("stock") == 0, "links", h.links)
	print("call after idle", cluster.call("stock", "@echo", "echo", "again"), "same link", #events == 1)
	-- maxclient 3: stock's gate keeps two clients; so does the native listener.
	print("maxclient 3 keeps: stock", kept(tonumber(skynet.getenv "lc_stock_max")))
	local _, port = cluster.open(0, 3)
	print("maxclient 3 keeps: native", kept(port))
	-- The stock node frozen: the call waiting on it fails by the heartbeat.
	local pid = skynet.getenv "lc_stock_pid"
	os.execute("kill -STOP " .. pid)
	local t = skynet.now()
	local ok = pcall(cluster.call, "stock", "@echo", "echo", "frozen")
	local secs = (skynet.now() - t) / 100
	os.execute("kill -CONT " .. pid)
	print("frozen call fails", not ok, "within", secs <= beat * 2 + 1, secs)
	for _ = 1, 100 do
		if downs("stock") > 0 then
			break
		end
		skynet.sleep(1)
	end
	local n, last = downs("stock")
	print("down event", n, last and last.reason)
	print("heartbeat timeouts", cluster.health().heartbeat_timeouts)
	-- Thawed: a call reconnects (once the engine's connect backoff, which a link found
	-- dead by the heartbeat starts, has passed: calls before that fail at once).
	local ok2, r
	for _ = 1, 50 do
		ok2, r = pcall(cluster.call, "stock", "@echo", "echo", "thawed")
		if ok2 then
			break
		end
		skynet.sleep(10)
	end
	print("call after thaw", ok2, r)
	-- cluster.linkevent again: the new handler replaces the old one and starts with the
	-- links open now; an error in it is logged and the next event still comes; nil stops.
	local got = {}
	cluster.linkevent(function(e)
		got[#got + 1] = e
		if #got == 1 then
			error "boom in a link handler"
		end
	end)
	skynet.sleep(20)
	print("new handler starts with", #got, got[1] and got[1].up, got[1] and got[1].node)
	local seen = #events
	cluster.reload { stock = false }
	skynet.sleep(20)
	print("after its error", #got, got[2] and got[2].reason, "old handler quiet", #events == seen)
	cluster.linkevent(nil)
	cluster.reload { stock = "127.0.0.1:" .. skynet.getenv "lc_port" }
	pcall(cluster.call, "stock", "@echo", "echo", "x")
	skynet.sleep(20)
	print("stopped", #got)
	print "done"
	skynet.abort()
end

skynet.start(function()
	if role == "stock" then
		stock()
	elseif role == "native" then
		native()
	else
		-- lc_role = "bad": the node has a bad cluster_* key; requiring the module fails.
		print("unreachable: skynet.cluster started")
	end
end)
