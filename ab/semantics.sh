#!/bin/bash
# Runs ab/semantics.lua under stock skynet.cluster and under the native module and
# diffs what they print. Usage: ab/semantics.sh LIB_SO BUILD_DIR (SKYNET_ROOT in env).
set -e
here=$(cd "$(dirname "$0")" && pwd)
. "$here/config.sh"
ab_check_root
lib=${1:?libskynet_cluster.so}; build=${2:?build dir}
# skynet runs from $SKYNET_ROOT: every path it is given must be absolute.
mkdir -p "$build/ab"; build=$(cd "$build" && pwd)
ab_cservice "$lib" "$build/ab/cservice"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for mode in stock native; do
	ab_config "$build/ab/sem.$mode" $mode semantics "sem_port = \"$port\""
	(cd "$SKYNET_ROOT" && timeout 30 ./skynet "$build/ab/sem.$mode") > "$build/ab/sem.$mode.log" 2>&1 || true
	grep -v -e '^\[' -e '^stack traceback' -e $'^\t' "$build/ab/sem.$mode.log" > "$build/ab/sem.$mode.out" || true
done
for mode in stock native; do
	if ! grep -qx done "$build/ab/sem.$mode.out"; then
		echo "semantics: the $mode run did not finish (no line "done"); log: $build/ab/sem.$mode.log"
		tail -20 "$build/ab/sem.$mode.log"
		exit 1
	fi
done
if diff -u "$build/ab/sem.stock.out" "$build/ab/sem.native.out"; then
	echo "semantics: stock and native print the same ($(wc -l < "$build/ab/sem.native.out") lines)"
else
	echo "semantics: differences above (- stock, + native); logs in $build/ab/"
	exit 1
fi
