-- Stock skynet side of `make interop-capi` (never run by CI): a node that listens as "db" on
-- $SKC_DB_PORT and serves skynet's examples/simpledb.lua, registered as "@sdb", with a = "foobar".
local skynet = require "skynet"
local cluster = require "skynet.cluster"
skynet.start(function()
	cluster.reload { db = "127.0.0.1:" .. os.getenv("SKC_DB_PORT") }
	local sdb = skynet.newservice("simpledb")
	cluster.register("sdb", sdb)
	skynet.call(sdb, "lua", "SET", "a", "foobar")
	skynet.call(sdb, "lua", "SET", "big", string.rep("R", 100 * 1024))
	cluster.open "db"
	print("INTEROP: db ready")
end)
