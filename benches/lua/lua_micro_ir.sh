#!/usr/bin/env bash
# Instruction counts per operation (valgrind callgrind) for the rows of benches/lua/lua_micro.lua:
# deterministic, so usable on a loaded or shared machine where ns/op figures are noise.
# Usage: benches/lua/lua_micro_ir.sh LUA CORE_SO LUA_DIR [STOCK_CORE_SO]
# Each row runs with N and 2N iterations; (Ir(2N) - Ir(N)) / N is the cost of one iteration,
# Lua loop and helper calls included (compare with the "helper" rows).
set -euo pipefail
lua=$1; ours=$2; dir=$3; stock=${4:-${STOCK_CORE_SO:-}}
here=$(cd "$(dirname "$0")" && pwd)
command -v valgrind >/dev/null || { echo "lua_micro_ir.sh: valgrind not found" >&2; exit 1; }
ir() { # module row n
    BENCH_ONLY="$2" BENCH_N=$3 BENCH_ROUNDS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$lua" "$here/lua_micro.lua" "$1" "$dir" 2>&1 | sed -n 's/.*Collected : //p'
}
per_op() { local a b; a=$(ir "$1" "$2" "$3"); b=$(ir "$1" "$2" $(($3 * 2))); echo $(((b - a) / $3)); }
rows=("helper: testmsg.new+free (tiny)" "helper: testmsg.new+free (64 KiB)" "packrequest tiny (+new)"
      "packrequest tiny name (+new)" "packrequest 64 KiB (+new)" "packpush tiny (+new)" "packtrace"
      "unpackrequest tiny (+free)" "packresponse tiny" "packresponse 64 KiB" "unpackresponse tiny"
      "append+concat 64 KiB" "isname")
printf "%-38s %12s %12s\n" "row (Ir per iteration)" "ours" "${stock:+stock}"
for r in "${rows[@]}"; do
    case "$r" in *64*) n=1000 ;; *) n=50000 ;; esac
    o=$(per_op "$ours" "$r" $n)
    if [ -n "$stock" ]; then printf "%-38s %12d %12d\n" "$r" "$o" "$(per_op "$stock" "$r" $n)"
    else printf "%-38s %12d\n" "$r" "$o"; fi
done
