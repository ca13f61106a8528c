# Lua side of the tests (issue 3): the drop-in module `skynet.cluster.core` replayed against the
# golden recording in real Lua 5.4 (Debian's lua5.4) and Lua 5.5 (built here from the lua-src
# crate's sources), under valgrind, plus a plain-C dlopen check and a Lua micro-benchmark.
#
#   make lua55           $(BUILD)/lua55: Lua 5.5 interpreter (tests/lua/lua_host.c + lua-src sources)
#   make lua-module      release library laid out as $(BUILD)/lua/skynet/cluster/core.so
#   make test-lua        golden replay in lua5.4 AND lua55 (both must pass)
#   make test-lua-leak   golden replay under valgrind (lua5.4 and lua55); any definite/indirect leak fails
#   make test-c-dlopen   dlopen the library from C with no Lua; link a C program with -lskynet_cluster
#   make bench-lua       micro-benchmark (not a test); STOCK_CORE_SO=/path/core.so adds stock figures
#   make bench-lua-ir    the same rows as instruction counts (callgrind), for noisy machines
#
# Needs: lua5.4 + liblua5.4-dev (headers for testmsg.so), valgrind, a C compiler, python3, and the
# lua-src crate (`cargo fetch`). Missing tools make the target fail with a message, never skip.

LUA54 ?= lua5.4
LUA54_INC ?= /usr/include/lua5.4
LUA55 := $(BUILD)/lua55
LUA_DIR := $(BUILD)/lua
LUA_CORE_SO := $(LUA_DIR)/skynet/cluster/core.so
TESTMSG_SO := $(LUA_DIR)/testmsg.so
SKC_GOLDEN ?= ../shared/golden
GOLDEN_LUA := $(BUILD)/golden_core.lua
VALGRIND ?= valgrind
VALGRIND_FLAGS := --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--show-leak-kinds=definite,indirect --error-exitcode=3 --num-callers=30 \
	--keep-debuginfo=yes
LUA_CFLAGS ?= -O2 -g -Wall

TESTS += test-lua test-lua-leak test-c-dlopen

.PHONY: lua55 lua-module test-lua test-lua-leak test-c-dlopen bench-lua lua-need-54

lua55: $(LUA55)

# Lua 5.5 interpreter exporting its API (-Wl,-E) for C modules. lua-src ships no lua.c/luac.c;
# filter them out anyway in case a later version does.
$(LUA55): tests/lua/lua_host.c tools/find_lua_src.sh
	@mkdir -p $(dir $@)
	src="$$(CARGO='$(CARGO)' tools/find_lua_src.sh)" && \
	echo "lua55: building from $$src" && \
	$(CC) -O2 -DLUA_USE_LINUX -I"$$src" -o $@.tmp tests/lua/lua_host.c \
	    $$(ls "$$src"/*.c | grep -v -E '/(lua|luac|onelua)\.c$$') -Wl,-E -lm -ldl && \
	mv $@.tmp $@
	@echo 'print("lua55: " .. _VERSION)' > $(BUILD)/lua55-version.lua && $@ $(BUILD)/lua55-version.lua

lua-need-54:
	@command -v $(LUA54) >/dev/null 2>&1 || { echo "ERROR: $(LUA54) not found: install the lua5.4 package (.ci/run does)"; exit 1; }
	@test -f $(LUA54_INC)/lua.h || { echo "ERROR: $(LUA54_INC)/lua.h not found: install liblua5.4-dev (.ci/run does)"; exit 1; }

# Test-only helper module (never part of the production library). No Lua linked in: the host's
# symbols are used, so one .so serves lua5.4 and lua55.
$(TESTMSG_SO): tests/lua/testmsg.c | lua-need-54
	@mkdir -p $(dir $@)
	$(CC) $(LUA_CFLAGS) -shared -fPIC -I$(LUA54_INC) -o $@ $<

lua-module:
	$(CARGO) build --release --lib
	@mkdir -p $(dir $(LUA_CORE_SO))
	cp -f $(LIB_SO) $(LUA_CORE_SO)

$(GOLDEN_LUA): tools/golden_to_lua.py $(wildcard $(SKC_GOLDEN)/core.jsonl)
	@mkdir -p $(dir $@)
	SKC_GOLDEN='$(SKC_GOLDEN)' python3 tools/golden_to_lua.py $@

LUA_REPLAY_DEPS := lua-need-54 lua-module $(TESTMSG_SO) $(GOLDEN_LUA)

# Both interpreters always run, so one report shows both; the target fails if either failed.
# tests/lua/roundtrip.lua adds pack -> unpack (-> append/concat) round trips beyond the golden;
# tests/lua/hostile.lua the bad-input cases where the module deliberately differs from stock.
test-lua: $(LUA_REPLAY_DEPS) $(LUA55)
	@rc=0; for host in $(LUA54) $(LUA55); do \
	  echo "== golden replay and round trips: $$host"; \
	  $$host tests/lua/replay_core.lua $(GOLDEN_LUA) $(LUA_DIR) || rc=1; \
	  $$host tests/lua/roundtrip.lua $(LUA_DIR) || rc=1; \
	  $$host tests/lua/hostile.lua $(LUA_DIR) || rc=1; \
	done; \
	if [ $$rc -ne 0 ]; then echo "test-lua: FAILED"; exit 1; fi; echo "test-lua: passed in Lua 5.4 and 5.5"

# The round trips and the full golden set under memcheck, in lua5.4 and in lua55 (about 60 s here). No
# suppressions: every definite/indirect leak and every memory error fails, whoever made it
# (tests/lua/README.md). On failure the replay runs again with SKC_LEAK_PER_CASE=1: testmsg.so asks
# valgrind for a leak count after every case (client requests) and the replay names the cases
# after which lost bytes grew.
test-lua-leak: $(LUA_REPLAY_DEPS) $(LUA55)
	@command -v $(VALGRIND) >/dev/null 2>&1 || { echo "ERROR: valgrind not found: install the valgrind package (.ci/run does)"; exit 1; }
	@rc=0; for host in $(LUA54) $(LUA55); do \
	  echo "== round trips and golden replay under valgrind: $$host"; \
	  $(VALGRIND) $(VALGRIND_FLAGS) -q $$host tests/lua/roundtrip.lua $(LUA_DIR) || rc=1; \
	  $(VALGRIND) $(VALGRIND_FLAGS) -q $$host tests/lua/hostile.lua $(LUA_DIR) || rc=1; \
	  $(VALGRIND) $(VALGRIND_FLAGS) $$host tests/lua/replay_core.lua $(GOLDEN_LUA) $(LUA_DIR) && continue; \
	  rc=1; log=$(BUILD)/valgrind-per-case-$$(basename $$host).log; \
	  echo "test-lua-leak: FAILED in $$host; replaying again with a leak count after every case:"; \
	  SKC_LEAK_PER_CASE=1 $(VALGRIND) $(VALGRIND_FLAGS) --log-file=$$log \
	      $$host tests/lua/replay_core.lua $(GOLDEN_LUA) $(LUA_DIR); \
	  echo "(valgrind log of that run: $$log)"; \
	done; \
	if [ $$rc -ne 0 ]; then echo "test-lua-leak: FAILED"; exit 1; fi
	@echo "test-lua-leak: no definite/indirect leak, no memory error (Lua 5.4 and 5.5)"

$(BUILD)/dlopen_plain: tests/lua/dlopen_plain.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -o $@ $< -ldl

# --no-allow-shlib-undefined (the default for executables, spelled out): ld must find every
# symbol the library needs; an undefined lua_* symbol in it would fail this link.
$(BUILD)/dlopen_linked: tests/lua/dlopen_linked.c lua-module
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -o $@ $< -L$(RELEASE) -lskynet_cluster -Wl,-rpath,$(abspath $(RELEASE)) -Wl,--no-allow-shlib-undefined

test-c-dlopen: lua-module $(BUILD)/dlopen_plain $(BUILD)/dlopen_linked
	$(BUILD)/dlopen_plain $(LIB_SO)
	$(BUILD)/dlopen_linked
	@undef=$$(nm -D --undefined-only $(LIB_SO) | grep -E ' (lua|luaL)_' || true); \
	if [ -n "$$undef" ]; then echo "ERROR: $(LIB_SO) has undefined Lua symbols (it must resolve them at luaopen time):"; echo "$$undef"; exit 1; fi
	@echo "test-c-dlopen: passed"

# Not a test. Times every function in lua5.4; STOCK_CORE_SO=/path/to/stock/core.so (built outside
# the repo, for Lua 5.4) adds stock's figures side by side. BENCH_LUA=$(LUA55) to use Lua 5.5.
BENCH_LUA ?= $(LUA54)
bench-lua: lua-need-54 lua-module $(TESTMSG_SO)
	$(BENCH_LUA) benches/lua/lua_micro.lua $(LUA_CORE_SO) $(LUA_DIR) $(STOCK_CORE_SO)

# Not a test either: instruction counts per operation under callgrind (deterministic, for loaded
# machines), same rows as bench-lua. Takes a few minutes.
.PHONY: bench-lua-ir
bench-lua-ir: lua-need-54 lua-module $(TESTMSG_SO)
	benches/lua/lua_micro_ir.sh $(BENCH_LUA) $(LUA_CORE_SO) $(LUA_DIR) $(STOCK_CORE_SO)
