#!/bin/bash
# skynet's own examples/cluster1.lua + examples/cluster2.lua, unchanged, in the four
# mixes (c1/c2: stock/stock, native/native, stock/native, native/stock), printing what
# each node printed (log lines removed). Usage: ab/examples.sh LIB_SO BUILD_DIR
# (SKYNET_ROOT in env). The examples use ports 2528 and 2529.
set -e
here=$(cd "$(dirname "$0")" && pwd)
. "$here/config.sh"
ab_setup "$1" "$2" examples
status=0
for mix in "stock stock" "native native" "stock native" "native stock"; do
	set -- $mix
	ab_config "$dir/c1.$1" "$1" cluster1
	ab_config "$dir/c2.$2" "$2" cluster2 "cluster = root .. \"examples/clustername.lua\""
	(cd "$SKYNET_ROOT" && exec ./skynet "$dir/c1.$1") > "$dir/c1.$1-$2.log" 2>&1 &
	c1=$!
	sleep 1.5
	(cd "$SKYNET_ROOT" && exec timeout 10 ./skynet "$dir/c2.$2") > "$dir/c2.$1-$2.log" 2>&1 || true
	sleep 0.5
	kill $c1 2>/dev/null || true
	wait $c1 2>/dev/null || true
	echo "=== cluster1 $1, cluster2 $2"
	echo "--- cluster1 printed:"; grep -v -e '^\[' -e '^stack traceback' -e $'^\t' "$dir/c1.$1-$2.log" || true
	grep -h -o 'ping \(proxy\|db2\).*' "$dir/c1.$1-$2.log" | cut -c1-40 || true
	echo "--- cluster2 printed:"; grep -v -e '^\[' -e '^stack traceback' -e $'^\t' "$dir/c2.$1-$2.log" || true
	if ! grep -q '^hello$' "$dir/c2.$1-$2.log" || ! grep -q 'ping db2:longstring' "$dir/c1.$1-$2.log"; then
		echo "!!! incomplete run (logs in $dir)"; status=1
	fi
done
exit $status
