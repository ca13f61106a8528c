#!/bin/bash
# skcluster killed while eight callers are busy (ab/faults.lua), repeated: no crash, no
# caller left hanging. Then a handler busy for 6 s: other calls are still answered and
# the endless-loop warning is logged. Usage: ab/faults.sh LIB_SO BUILD_DIR (SKYNET_ROOT in env).
set -e
here=$(cd "$(dirname "$0")" && pwd)
. "$here/config.sh"
ab_setup "$1" "$2" faults

# run NAME SECONDS [CONFIG LINES...]: one native node running ab/faults.lua, log in
# $dir/NAME.log, exit status in $rc.
run() {
	local name=$1 secs=$2
	shift 2
	ab_config "$dir/$name" native faults "faults_port = \"$(ab_free_port)\"" "$@"
	rc=0
	(cd "$SKYNET_ROOT" && timeout "$secs" ./skynet "$dir/$name") > "$dir/$name.log" 2>&1 || rc=$?
}
fail() {
	echo "faults: $1 failed (exit $rc); log: $dir/$2.log"
	grep -v LAUNCH "$dir/$2.log" | tail -20
	exit 1
}

for n in 1 2 3 4 5; do
	run "faults.$n" 30
	if [ $rc -ne 0 ] || ! grep -q "^before kill	true" "$dir/faults.$n.log" || ! grep -q "^after kill errors	true	alive" "$dir/faults.$n.log"; then
		fail "run $n" "faults.$n"
	fi
done
echo "faults: skcluster killed under 8 busy callers, 5 runs: every call in flight failed, none hung, no crash"
run spin 60 "faults_mode = \"spin\""
if [ $rc -ne 0 ] || ! grep -q "^during spin max ms	.*	true" "$dir/spin.log" || ! grep -q "maybe in an endless loop" "$dir/spin.log"; then
	fail "the spin run" spin
fi
echo "faults: a handler busy for 6 s: $(grep "^during spin" "$dir/spin.log" | tr '\t' ' '); endless-loop warning logged"
