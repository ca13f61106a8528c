#!/bin/bash
# make ab: the same workload on two skynet nodes, stock skynet.cluster then the native
# engine (same skynet, same thread count and profile setting), one side-by-side table and
# a PNG chart. Usage: ab/ab.sh LIB_SO OUT_DIR   (env: SKYNET_ROOT, AB_QUICK=1 for a short
# matrix, AB_DURATION seconds per row, AB_THREADS worker threads per node, AB_PROFILE,
# AB_VENV a venv with matplotlib, AB_INLINE=false to turn the native service's inline
# dispatch off).
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
# AB_MODES="native" reruns one side and keeps the other side's rows of the last run.
modes=${AB_MODES:-stock native}
rows="$dir/rows.txt"; touch "$rows"
for mode in $modes; do grep -v " $mode " "$rows" > "$rows.tmp" || true; mv "$rows.tmp" "$rows"; done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
server_pid=
client_pid=
cleanup() { for p in $server_pid $client_pid; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
echo "ab: skynet $SKYNET_ROOT, thread=$AB_THREADS profile=$AB_PROFILE per node, ${duration}s per row; sizes $sizes, concurrency $concs"
for mode in $modes; do
	port=$(free_port)
	rm -f "$dir/ready.$mode"
	ab_config "$dir/server.$mode" $mode abserver "ab_server = \"127.0.0.1:$port\"" "ab_ready = \"$dir/ready.$mode\""
	(cd "$SKYNET_ROOT" && exec ./skynet "$dir/server.$mode") > "$dir/server.$mode.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 1 200); do [ -s "$dir/ready.$mode" ] && break; sleep 0.1; done
	[ -s "$dir/ready.$mode" ] || { echo "ab: $mode server did not start:"; cat "$dir/server.$mode.log"; exit 1; }
	if [ $mode = native ] && [ -x "$cli" ]; then
		# The raw loopback floor of this run (plain blocking TCP ping-pong, same frame), and
		# the native server loaded by the engine's own client for reference.
		"$cli" bench --connect "127.0.0.1:$port" --size tiny --conc 1 --duration "$duration" > "$dir/floor.txt" 2>&1 || true
	fi
	ab_config "$dir/client.$mode" $mode abclient "ab_server = \"127.0.0.1:$port\"" "ab_mode = \"$mode\"" \
		"ab_server_pid = \"$server_pid\"" "ab_duration = \"$duration\"" "ab_out = \"$rows\"" \
		"ab_sizes = \"$sizes\"" "ab_concs = \"$concs\""
	echo "ab: $mode ..."
	(cd "$SKYNET_ROOT" && exec ./skynet "$dir/client.$mode") > "$dir/client.$mode.log" 2>&1 &
	client_pid=$!
	# skynet.abort() does not always end the process (stock leaves it running): stop it
	# once it wrote its last line, or after 15 minutes.
	for _ in $(seq 1 9000); do
		grep -q "^push $mode" "$rows" && break
		kill -0 "$client_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$client_pid" 2>/dev/null || true
	wait "$client_pid" 2>/dev/null || true
	client_pid=
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
	grep -q "^push $mode" "$rows" || { echo "ab: the $mode run did not finish; see $dir/client.$mode.log"; tail -20 "$dir/client.$mode.log"; exit 1; }
done
py=python3
[ -x "$AB_VENV/bin/python" ] && py="$AB_VENV/bin/python"
"$py" "$here/report.py" "$rows" "$dir/floor.txt" "$dir/ab.png" | tee "$dir/table.txt"
