#!/bin/bash
# Runs ab/semantics.lua under stock skynet.cluster and under the native module and
# diffs what they print. Usage: ab/semantics.sh LIB_SO BUILD_DIR (SKYNET_ROOT in env).
set -e
here=$(cd "$(dirname "$0")" && pwd)
. "$here/config.sh"
ab_setup "$1" "$2" ab
port=$(ab_free_port)
for mode in stock native; do
	ab_config "$dir/sem.$mode" $mode semantics "sem_port = \"$port\""
	(cd "$SKYNET_ROOT" && timeout 30 ./skynet "$dir/sem.$mode") > "$dir/sem.$mode.log" 2>&1 || true
	grep -v -e '^\[' -e '^stack traceback' -e $'^\t' "$dir/sem.$mode.log" > "$dir/sem.$mode.out" || true
done
for mode in stock native; do
	if ! grep -qx done "$dir/sem.$mode.out"; then
		echo "semantics: the $mode run did not finish (no line "done"); log: $dir/sem.$mode.log"
		tail -20 "$dir/sem.$mode.log"
		exit 1
	fi
done
if diff -u "$dir/sem.stock.out" "$dir/sem.native.out"; then
	echo "semantics: stock and native print the same ($(wc -l < "$dir/sem.native.out") lines)"
else
	echo "semantics: differences above (- stock, + native); logs in $dir/"
	exit 1
fi
