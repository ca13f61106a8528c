#!/bin/bash
# skcluster killed while eight callers are busy (ab/faults.lua), repeated: no crash, no
# caller left hanging. Usage: ab/faults.sh LIB_SO BUILD_DIR (SKYNET_ROOT in env).
set -e
here=$(cd "$(dirname "$0")" && pwd)
. "$here/config.sh"
ab_check_root
lib=${1:?libskynet_cluster.so}; build=${2:?build dir}
dir="$build/faults"; mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
ab_cservice "$lib" "$dir/cservice"
for run in 1 2 3 4 5; do
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	ab_config "$dir/faults" native faults "faults_port = \"$port\""
	rc=0
	(cd "$SKYNET_ROOT" && timeout 30 ./skynet "$dir/faults") > "$dir/faults.$run.log" 2>&1 || rc=$?
	if [ $rc -ne 0 ] || ! grep -q "^before kill	true" "$dir/faults.$run.log" || ! grep -q "^after kill errors	true	alive" "$dir/faults.$run.log"; then
		echo "faults: run $run failed (exit $rc); log: $dir/faults.$run.log"
		grep -v LAUNCH "$dir/faults.$run.log" | tail -20
		exit 1
	fi
done
echo "faults: skcluster killed under 8 busy callers, 5 runs: every call in flight failed, none hung, no crash"
