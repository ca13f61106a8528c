#!/bin/bash
# skcluster killed while eight callers are busy (ab/faults.lua), repeated: no crash, no
# caller left hanging. Then a handler busy for 6 s: other calls are still answered and
# the endless-loop warning is logged. Usage: ab/faults.sh LIB_SO BUILD_DIR (SKYNET_ROOT in env).
set -e
here=$(cd "$(dirname "$0")" && pwd)
. "$here/config.sh"
ab_setup "$1" "$2" faults
for run in 1 2 3 4 5; do
	port=$(ab_free_port)
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
port=$(ab_free_port)
ab_config "$dir/spin" native faults "faults_port = \"$port\"" "faults_mode = \"spin\""
rc=0
(cd "$SKYNET_ROOT" && timeout 60 ./skynet "$dir/spin") > "$dir/spin.log" 2>&1 || rc=$?
if [ $rc -ne 0 ] || ! grep -q "^during spin max ms	.*	true" "$dir/spin.log" || ! grep -q "maybe in an endless loop" "$dir/spin.log"; then
	echo "faults: the spin run failed (exit $rc); log: $dir/spin.log"
	grep -v LAUNCH "$dir/spin.log" | tail -20
	exit 1
fi
echo "faults: a handler busy for 6 s: $(grep "^during spin" "$dir/spin.log" | tr '\t' ' '); endless-loop warning logged"
