#!/bin/bash
# Link lifecycle of a native node against a stock skynet node (issue 12): heartbeat on,
# link events, maxclient as stock's gate, a frozen stock node (SIGSTOP) found dead by the
# heartbeat, and a bad cluster_* key stopping the native service from starting. Runs
# ab/lifecycle.lua. Usage: ab/lifecycle.sh LIB_SO BUILD_DIR (SKYNET_ROOT in env).
set -e
here=$(cd "$(dirname "$0")" && pwd)
. "$here/config.sh"
ab_setup "$1" "$2" lifecycle

port=$(ab_free_port)
stock_max=$(ab_free_port)
rm -f "$dir/ready"
ab_config "$dir/stock" stock lifecycle 'lc_role = "stock"' "lc_port = \"$port\"" "lc_stock_max = \"$stock_max\"" \
	"lc_ready = \"$dir/ready\""
(cd "$SKYNET_ROOT" && exec ./skynet "$dir/stock") > "$dir/stock.log" 2>&1 &
stock_pid=$!
trap 'kill -CONT $stock_pid 2>/dev/null; kill $stock_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
[ -s "$dir/ready" ] || { echo "lifecycle: the stock node did not start:"; tail -20 "$dir/stock.log"; exit 1; }

ab_config "$dir/native" native lifecycle 'lc_role = "native"' "lc_port = \"$port\"" "lc_stock_max = \"$stock_max\"" \
	"lc_stock_pid = \"$stock_pid\"" 'cluster_heartbeat = 1'
rc=0
(cd "$SKYNET_ROOT" && timeout 60 ./skynet "$dir/native") > "$dir/native.log" 2>&1 || rc=$?
out=$(grep -v -e '^\[' -e '^stack traceback' -e $'^\t' "$dir/native.log" || true)
echo "$out" | sed 's/^/lifecycle: /'
check() {
	if ! echo "$out" | grep -q -- "$1"; then
		echo "lifecycle: FAILED: no line matching: $1 (exit $rc; log $dir/native.log)"
		exit 1
	fi
}
check '^call	hello$'
check '^link up event	true$'
check '^idle link kept	true	links	1$'
check '^call after idle	again	same link	true$'
check '^maxclient 3 keeps: stock	2$'
check '^maxclient 3 keeps: native	2$'
check '^frozen call fails	true	within	true'
check '^down event	1	heartbeat: '
check '^heartbeat timeouts	1$'
check '^call after thaw	true	thawed$'
check '^new handler starts with	1	true	stock$'
check '^after its error	2	node address changed	old handler quiet	true$'
check '^stopped	2$'
check '^done$'
grep -q "cluster.linkevent: .*boom in a link handler" "$dir/native.log" \
	|| { echo "lifecycle: FAILED: the error in the link handler was not logged"; exit 1; }
grep -q "cluster call to \[stock\] failed: link down: heartbeat: " "$dir/native.log" \
	|| { echo "lifecycle: FAILED: the heartbeat failure was not logged"; exit 1; }

# A bad key: the service logs it and does not start; so the node's start service fails.
ab_config "$dir/bad" native lifecycle 'lc_role = "bad"' 'cluster_heartbeat = "soon"' 'cluster_max_links = 0'
(cd "$SKYNET_ROOT" && exec timeout 10 ./skynet "$dir/bad") > "$dir/bad.log" 2>&1 &
bad=$!
for _ in $(seq 1 100); do grep -q -e "init service failed" -e unreachable "$dir/bad.log" && break; sleep 0.1; done
kill $bad 2>/dev/null || true
wait $bad 2>/dev/null || true
for want in 'skcluster: bad config cluster_max_links = "0": must be a whole number, at least 1' \
	'skcluster: bad config cluster_heartbeat = "soon": must be a number of seconds' \
	'cannot launch the C service skcluster'; do
	grep -qF "$want" "$dir/bad.log" || { echo "lifecycle: FAILED: bad config: no line with: $want (log $dir/bad.log)"; exit 1; }
done
if grep -q "unreachable" "$dir/bad.log"; then
	echo "lifecycle: FAILED: the node started with a bad config"
	exit 1
fi
echo "lifecycle: bad config: $(grep -c 'bad config' "$dir/bad.log") keys logged, the service did not start"
echo "lifecycle: passed"
