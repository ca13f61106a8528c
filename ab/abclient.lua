-- A/B harness, client node: runs the matrix against node "server" and appends one line
-- per row to the file ab_out. With ab_gate set (ab.sh does), row i (the push test is the
-- last index) starts only once the file <ab_gate>.<i> exists, and <ab_gate>.<i>.done is
-- written after it: ab.sh runs the stock and the native pair row by row, alternating, so
-- both sides of a row see the same machine (this machine's speed drifts over minutes).
-- Lines:
--   row <mode> <size> <conc> <calls> <seconds> <payload bytes> <p50 us> <p99 us> <cpu client s> <cpu server s> <errors>
--   push <mode> <pushes> <seconds> <cpu client s> <cpu server s>
--   localpush <mode> <pushes/s into a sink from its own node>
-- CPU is utime+stime of each process (/proc/<pid>/stat) over the row.
local skynet = require "skynet"
local cluster = require "skynet.cluster"
require "skynet.manager"	-- skynet.abort

local mode = skynet.getenv "ab_mode"
local server_pid = skynet.getenv "ab_server_pid"
local duration = tonumber(skynet.getenv "ab_duration")
local out_path = skynet.getenv "ab_out"

local function split(s)
	local t = {}
	for w in s:gmatch "[^,]+" do t[#t + 1] = w end
	return t
end

local CLK_TCK = 100
local function cpu(pid)
	local f = io.open("/proc/" .. pid .. "/stat")
	if not f then return 0 end
	local s = f:read "*a"
	f:close()
	-- fields after the ")" of the command name: state is field 3; utime 14, stime 15
	local rest = s:match "%) (.*)"
	local fields = split(rest:gsub(" ", ","))
	return (tonumber(fields[12]) + tonumber(fields[13])) / CLK_TCK
end

local gate = skynet.getenv "ab_gate"
local function exists(path)
	local f = io.open(path)
	if f then f:close() end
	return f ~= nil
end
local function wait_turn(i)
	if gate then
		while not exists(gate .. "." .. i) do skynet.sleep(1) end
	end
end
local function done(i)
	if gate then
		local f = assert(io.open(gate .. "." .. i .. ".done", "w"))
		f:close()
	end
end

local out = assert(io.open(out_path, "a"))
local function emit(line)
	out:write(line, "\n")
	out:flush()
	print(line)
end

local function percentile(sorted, p)
	if #sorted == 0 then return 0 end
	local i = math.max(1, math.min(#sorted, math.ceil(#sorted * p)))
	return sorted[i]
end

local function row(size, conc)
	local arg = size == "int" and 12345 or string.rep("x", tonumber(size))
	local bytes = size == "int" and 0 or tonumber(size)
	for _ = 1, 3 do
		assert(cluster.call("server", "@echo", arg) ~= nil)
	end
	collectgarbage()
	local lat, n, errors = {}, 0, 0
	local c0, s0 = cpu("self"), cpu(server_pid)
	local t0 = skynet.hpc()
	local deadline = t0 + duration * 1e9
	local me = coroutine.running()
	local finished = 0
	for _ = 1, conc do
		skynet.fork(function()
			while skynet.hpc() < deadline do
				local t = skynet.hpc()
				if pcall(cluster.call, "server", "@echo", arg) then
					n = n + 1
					lat[n] = skynet.hpc() - t
				else
					errors = errors + 1
					skynet.sleep(1)
				end
			end
			finished = finished + 1
			if finished == conc then skynet.wakeup(me) end
		end)
	end
	skynet.wait(me)
	local secs = (skynet.hpc() - t0) / 1e9
	local c1, s1 = cpu("self"), cpu(server_pid)
	table.sort(lat)
	emit(string.format("row %s %s %d %d %.3f %d %.1f %.1f %.2f %.2f %d", mode, size, conc, n, secs, bytes,
		percentile(lat, 0.5) / 1e3, percentile(lat, 0.99) / 1e3, c1 - c0, s1 - s0, errors))
end

local measure_pushes = require "abpush"

local function pushes()
	local c0, s0 = cpu("self"), cpu(server_pid)
	local sent, secs = measure_pushes(function(i)
		cluster.send("server", "@sink", i)
	end, function()
		return cluster.call("server", "@sink")
	end, duration)
	local c1, s1 = cpu("self"), cpu(server_pid)
	emit(string.format("push %s %d %.3f %.2f %.2f", mode, sent, secs, c1 - c0, s1 - s0))
	-- The same pushes from a service on the server node into a sink there (skynet.send,
	-- no cluster): the most that sink takes in, which no cluster path can exceed.
	emit(string.format("localpush %s %.0f", mode, cluster.call("server", "@localpush", duration)))
end

skynet.start(function()
	cluster.reload { server = skynet.getenv "ab_server" }
	-- wait for the server
	while not pcall(cluster.call, "server", "@sink") do
		skynet.sleep(10)
	end
	local i = 0
	for _, size in ipairs(split(skynet.getenv "ab_sizes")) do
		for _, conc in ipairs(split(skynet.getenv "ab_concs")) do
			wait_turn(i)
			row(size, tonumber(conc))
			done(i)
			i = i + 1
		end
	end
	wait_turn(i)
	pushes()
	done(i)
	out:close()
	skynet.abort()
end)
