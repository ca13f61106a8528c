# Shared by the ab/ scripts: writes a skynet config for one node.
#   ab_config FILE MODE START [extra lines...]
# MODE is stock (skynet's own skynet.cluster) or native (lualib/skynet/cluster.lua first
# on lua_path, cservice/skcluster.so from $AB_CSERVICE). Paths are absolute, so the node
# runs from $SKYNET_ROOT (skynet's examples assume that cwd).
ab_check_root() {
	if [ -z "$SKYNET_ROOT" ] || [ ! -x "$SKYNET_ROOT/skynet" ] || [ ! -f "$SKYNET_ROOT/lualib/skynet.lua" ]; then
		echo "SKYNET_ROOT must point at a built skynet tree (with ./skynet, lualib/, service/, cservice/)." >&2
		echo "The project never fetches or builds skynet: point SKYNET_ROOT at a skynet tree you have built yourself (see skynet's own README)" >&2
		echo "then: make ab SKYNET_ROOT=/path/to/skynet" >&2
		exit 2
	fi
}
ab_config() {
	local file=$1 mode=$2 start=$3
	shift 3
	local repo; repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	{
		echo "root = \"$SKYNET_ROOT/\""
		echo "thread = ${AB_THREADS:-4}"
		echo "logger = ${AB_LOGGER:-nil}"
		echo "harbor = 0"
		echo "start = \"$start\""
		echo "bootstrap = \"snlua bootstrap\""
		echo "lualoader = root .. \"lualib/loader.lua\""
		echo "snax = root .. \"test/?.lua\""
		if [ "$mode" = native ]; then
			echo "lua_path = \"$repo/lualib/?.lua;\" .. root .. \"lualib/?.lua;\" .. root .. \"lualib/?/init.lua;$repo/ab/?.lua\""
			echo "luaservice = \"$repo/service/?.lua;$repo/ab/?.lua;\" .. root .. \"service/?.lua;\" .. root .. \"test/?.lua;\" .. root .. \"examples/?.lua\""
			echo "cpath = \"$AB_CSERVICE/?.so;\" .. root .. \"cservice/?.so\""
		else
			echo "lua_path = root .. \"lualib/?.lua;\" .. root .. \"lualib/?/init.lua;$repo/ab/?.lua\""
			echo "luaservice = \"$repo/ab/?.lua;\" .. root .. \"service/?.lua;\" .. root .. \"test/?.lua;\" .. root .. \"examples/?.lua\""
			echo "cpath = root .. \"cservice/?.so\""
		fi
		echo "lua_cpath = root .. \"luaclib/?.so\""
		echo "profile = ${AB_PROFILE:-true}"
		# AB_INLINE=false: the native service leaves every message to skynet's workers.
		[ -n "$AB_INLINE" ] && echo "skcluster_inline = \"$AB_INLINE\""
		# AB_NATIVE_CONFIG: more lines for native nodes (e.g. 'cluster_max_send_queue = "224M"').
		[ "$mode" = native ] && [ -n "$AB_NATIVE_CONFIG" ] && echo "$AB_NATIVE_CONFIG"
		for l in "$@"; do echo "$l"; done
	} > "$file"
}
# A cservice directory holding skcluster.so -> the built library.
ab_cservice() {
	local lib=$1 dir=$2
	mkdir -p "$dir"
	ln -sf "$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")" "$dir/skcluster.so"
	AB_CSERVICE=$(cd "$dir" && pwd)
	export AB_CSERVICE
}
# The start of the runner scripts: ab_setup LIB_SO BUILD_DIR SUBDIR checks SKYNET_ROOT, makes
# $dir = BUILD_DIR/SUBDIR (absolute: skynet runs from $SKYNET_ROOT) with the cservice link,
# and sets $lib.
ab_setup() {
	ab_check_root
	lib=${1:?libskynet_cluster.so}
	dir="${2:?build dir}/${3:?subdir}"; mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
	ab_cservice "$lib" "$dir/cservice"
}
# A free TCP port on 127.0.0.1.
ab_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
