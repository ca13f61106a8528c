#!/bin/sh
# Prints the directory of the Lua 5.5 C sources shipped by the lua-src crate (a dev-dependency
# in Cargo.toml), for mk/lua.mk to build the test interpreter $(BUILD)/lua55.
# Asks cargo first (`cargo metadata` downloads the crate if needed), then falls back to a glob
# over the registry. Fails loudly if it cannot find them.
set -eu
cargo="${CARGO:-cargo}"
dir=""
manifest=$("$cargo" metadata --format-version 1 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "lua-src":
        print(p["manifest_path"]); break
' 2>/dev/null || true)
if [ -n "$manifest" ]; then
    for d in "$(dirname "$manifest")"/lua-5.5.*; do [ -f "$d/lapi.c" ] && dir="$d"; done
fi
if [ -z "$dir" ]; then
    for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/lua-src-*/lua-5.5.*; do
        [ -f "$d/lapi.c" ] && dir="$d"
    done
fi
if [ -z "$dir" ]; then
    echo "find_lua_src.sh: Lua 5.5 sources of the lua-src crate not found; run 'cargo fetch' first" >&2
    exit 1
fi
echo "$dir"
