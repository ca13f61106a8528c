#!/bin/bash
# make ab: the same workload on two skynet nodes, stock skynet.cluster and the native
# engine (same skynet, same thread count and profile setting), one side-by-side table and
# a PNG chart. Usage: ab/ab.sh LIB_SO OUT_DIR   (env: SKYNET_ROOT, AB_QUICK=1 for a short
# matrix, AB_DURATION seconds per row, AB_THREADS worker threads per node, AB_PROFILE,
# AB_VENV a venv with matplotlib, AB_INLINE=false to turn the native service's inline
# dispatch off, AB_MODES="native" to rerun one side and keep the other's last rows).
#
# Both pairs of nodes (stock client+server, native client+server) run at once, but only
# one pair works at a time: row by row, stock then native, so that the two sides of each
# row are measured minutes apart at most, not a whole matrix apart (this machine's speed
# drifts). The idle pair only polls for its turn every 10 ms.
set -e
here=$(cd "$(dirname "$0")" && pwd)
. "$here/config.sh"
ab_check_root
lib=${1:?libskynet_cluster.so}; dir=${2:?output dir}
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
ab_cservice "$lib" "$dir/cservice"
cli=$(dirname "$lib")/skynet-cluster
if [ -n "$AB_QUICK" ]; then
	sizes=${AB_SIZES:-int,65536}; concs=${AB_CONCS:-1,64}; duration=${AB_DURATION:-0.5}
else
	sizes=${AB_SIZES:-int,1024,16384,65536,1048576}; concs=${AB_CONCS:-1,8,64,256}; duration=${AB_DURATION:-2}
fi
export AB_THREADS=${AB_THREADS:-2} AB_PROFILE=${AB_PROFILE:-true}
modes=${AB_MODES:-stock native}
rows="$dir/rows.txt"; touch "$rows"
for mode in $modes; do grep -v " $mode " "$rows" > "$rows.tmp" || true; mv "$rows.tmp" "$rows"; done
nrows=$(( $(echo "$sizes" | tr ',' '\n' | wc -l) * $(echo "$concs" | tr ',' '\n' | wc -l) ))
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
echo "ab: skynet $SKYNET_ROOT, thread=$AB_THREADS profile=$AB_PROFILE per node, ${duration}s per row; sizes $sizes, concurrency $concs; rows alternate between: $modes"
declare -A port server
for mode in $modes; do
	port[$mode]=$(ab_free_port)
	rm -f "$dir/ready.$mode" "$dir/gate.$mode".*
	ab_config "$dir/server.$mode" $mode abserver "ab_server = \"127.0.0.1:${port[$mode]}\"" "ab_ready = \"$dir/ready.$mode\""
	(cd "$SKYNET_ROOT" && exec ./skynet "$dir/server.$mode") > "$dir/server.$mode.log" 2>&1 &
	server[$mode]=$!
	pids="$pids $!"
	for _ in $(seq 1 200); do [ -s "$dir/ready.$mode" ] && break; sleep 0.1; done
	[ -s "$dir/ready.$mode" ] || { echo "ab: $mode server did not start:"; cat "$dir/server.$mode.log"; exit 1; }
done
# The raw loopback floor (plain blocking TCP ping-pong in one process, same frame). It is
# measured twice, before the clients start and after the last row; the report takes the
# lower (faster) p50 of the two, so noise cannot make the native/floor ratio look better.
floor() {
	[ -x "$cli" ] && "$cli" bench --connect "127.0.0.1:${port[native]:-${port[stock]}}" --size tiny --conc 1 --duration "$duration" >> "$dir/floor.txt" 2>&1 || true
}
rm -f "$dir/floor.txt"
floor
for mode in $modes; do
	ab_config "$dir/client.$mode" $mode abclient "ab_server = \"127.0.0.1:${port[$mode]}\"" "ab_mode = \"$mode\"" \
		"ab_server_pid = \"${server[$mode]}\"" "ab_duration = \"$duration\"" "ab_out = \"$rows\"" \
		"ab_sizes = \"$sizes\"" "ab_concs = \"$concs\"" "ab_gate = \"$dir/gate.$mode\""
	(cd "$SKYNET_ROOT" && exec ./skynet "$dir/client.$mode") > "$dir/client.$mode.log" 2>&1 &
	pids="$pids $!"
done
for i in $(seq 0 "$nrows"); do
	for mode in $modes; do
		touch "$dir/gate.$mode.$i"
		# at most 15 minutes per row (stock's 1 MiB rows at concurrency 256 are the slowest)
		for _ in $(seq 1 9000); do
			[ -e "$dir/gate.$mode.$i.done" ] && break
			sleep 0.1
		done
		[ -e "$dir/gate.$mode.$i.done" ] || { echo "ab: the $mode run did not finish row $i; see $dir/client.$mode.log"; tail -20 "$dir/client.$mode.log"; exit 1; }
	done
	echo "ab: row $((i + 1))/$((nrows + 1)) done"
done
floor
cleanup; pids=
py=python3
[ -x "$AB_VENV/bin/python" ] && py="$AB_VENV/bin/python"
"$py" "$here/report.py" "$rows" "$dir/floor.txt" "$dir/ab.png" | tee "$dir/table.txt"
