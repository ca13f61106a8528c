-- The push measurement of make ab, over the cluster (abclient.lua) and inside one node
-- (ablocal.lua). Pipelined: batches of pushes, each followed by a call that returns the
-- sink's count (so it comes back after the batch arrived); at most 4 batches are
-- unconfirmed at a time. send(i) pushes, count() calls the sink. Returns the pushes sent
-- (all confirmed) and the seconds taken.
local skynet = require "skynet"

return function(send, count, duration)
	local batch, window = 1000, 4
	local sent, confirmed, outstanding = 0, 0, 0
	local base = count()
	local me = coroutine.running()
	local waiting = false
	local t0 = skynet.hpc()
	local deadline = t0 + duration * 1e9
	while skynet.hpc() < deadline do
		for i = 1, batch do
			send(i)
		end
		sent = sent + batch
		outstanding = outstanding + 1
		local expect = sent
		skynet.fork(function()
			local got = count() - base
			assert(got >= expect, string.format("sink saw %d of %d pushes", got, expect))
			if got > confirmed then confirmed = got end
			outstanding = outstanding - 1
			if waiting then
				waiting = false
				skynet.wakeup(me)
			end
		end)
		while outstanding >= window do
			waiting = true
			skynet.wait(me)
		end
	end
	while outstanding > 0 do
		waiting = true
		skynet.wait(me)
	end
	assert(confirmed == sent, string.format("sink saw %d of %d pushes", confirmed, sent))
	return sent, (skynet.hpc() - t0) / 1e9
end
