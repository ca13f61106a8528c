-- The native service killed while callers are busy (ab/faults.sh): eight coroutines call
-- and push in a loop over a link to this node itself; skcluster is killed under them.
-- Every call in flight must end with an error (none may hang), later calls fail, and the
-- node stays up. Prints "before kill true", then "after kill errors true alive".
local skynet = require "skynet"
local cluster = require "skynet.cluster"
require "skynet.manager"

-- faults_mode = "spin": a handler busy for 6 s on the node, called over the cluster
-- (so it may run on the engine's I/O thread), while eight callers go on calling echo:
-- their calls keep being answered (prints "during spin max ms <n> true" when the slowest
-- took under 1 s), and skynet's endless-loop warning is logged (checked by faults.sh).
local function spin()
	cluster.register("spin", skynet.newservice("abecho"))
	local spun = false
	skynet.fork(function()
		cluster.call("self", "@spin", "spin", 6000)
		spun = true
	end)
	skynet.sleep(20)
	local worst, n, stop = 0, 0, false
	for i = 1, 8 do
		skynet.fork(function()
			while not stop do
				local t = skynet.now()
				cluster.call("self", "@echo", "echo", i)
				n = n + 1
				worst = math.max(worst, (skynet.now() - t) * 10)
			end
		end)
	end
	while not spun do skynet.sleep(10) end
	stop = true
	print("during spin max ms", worst, worst < 1000, n)
	skynet.abort()
end

skynet.start(function()
	cluster.reload { self = "127.0.0.1:" .. skynet.getenv "faults_port" }
	cluster.open "self"
	cluster.register("echo", skynet.newservice("abecho"))
	if skynet.getenv "faults_mode" == "spin" then
		return spin()
	end
	local ok_n, err_n = 0, 0
	for i = 1, 8 do
		skynet.fork(function()
			while true do
				if pcall(cluster.call, "self", "@echo", "echo", i) then
					ok_n = ok_n + 1
				else
					err_n = err_n + 1
					skynet.sleep(1)
				end
				pcall(cluster.send, "self", "@echo", "push", i)
			end
		end)
	end
	skynet.sleep(100)
	print("before kill", ok_n > 0)
	skynet.kill(cluster.native_handle())
	local before = err_n
	skynet.sleep(100)
	-- all eight loops went on: each got an error for its call in flight, then more
	print("after kill errors", err_n >= before + 8, "alive")
	skynet.abort()
end)
