-- Stock skynet side of `make interop-capi` (never run by CI): calls the C-API server
-- (examples/server.c, `@echo`) at 127.0.0.1:$SKC_C_PORT through skynet.cluster, then pushes
-- to stop it and exits.
local skynet = require "skynet"
local cluster = require "skynet.cluster"
skynet.start(function()
	cluster.reload { cnode = "127.0.0.1:" .. os.getenv("SKC_C_PORT") }
	local a, b, t = cluster.call("cnode", "@echo", "hello", 42, {1, 2, x = "y"})
	print("INTEROP: echo", a, b, t[1], t[2], t.x)
	local big = string.rep("Z", 70000)
	print("INTEROP: big echo", cluster.call("cnode", "@echo", big) == big)
	print("INTEROP: query", cluster.query("cnode", "echo"))
	print("INTEROP: missing", pcall(cluster.call, "cnode", "@nope", 1))
	skynet.fork(function()
		skynet.trace("capi")
		print("INTEROP: traced", cluster.call("cnode", "@echo", "t"))
	end)
	skynet.sleep(20)
	cluster.send("cnode", "@echo", "stop")
	skynet.sleep(10)
	print("INTEROP: done")
	skynet.abort()
end)
