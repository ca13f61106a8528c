# The engine inside skynet (issue 7): the skcluster C service (src/skynet), the drop-in
# lualib/skynet/cluster.lua, its test double for CI, and the A/B benchmark against stock.
#
#   make test-skynet                      the service driven by tests/skynet/skynet_double.c (no skynet needed)
#   make ab SKYNET_ROOT=/path/to/skynet   stock vs native on two skynet nodes: table + PNG
#   make skynet-semantics SKYNET_ROOT=..  the public API under stock and native, diffed
#   make skynet-examples SKYNET_ROOT=..   skynet's examples/cluster1+cluster2, all four mixes
#   make skynet-faults SKYNET_ROOT=..     skcluster killed under busy callers: no hang, no crash
#   make skynet-lifecycle SKYNET_ROOT=..  heartbeat on against a stock node (idle link kept, a
#                                         frozen node found dead), link events, maxclient, bad keys
#
# The project never fetches or builds skynet: SKYNET_ROOT is your own built tree.

SKYNET_DOUBLE := $(BUILD)/skynet_double
AB_DIR := $(BUILD)/ab
AB_VENV := $(BUILD)/ab-venv

.PHONY: test-skynet test-skynet-leak ab ab-venv skynet-semantics skynet-examples skynet-faults skynet-lifecycle

TESTS += test-skynet test-skynet-leak

$(SKYNET_DOUBLE): tests/skynet/skynet_double.c
	@mkdir -p $(BUILD)
	$(CC) -O2 -g -Wall -Wextra -Wno-unused-parameter -I$(LUA54_INC) -o $@ $< -Wl,-E -pthread -ldl -llua5.4

test-skynet: $(SKYNET_DOUBLE) build
	SKC_DOUBLE=$(abspath $(SKYNET_DOUBLE)) SKC_LIB=$(abspath $(LIB_SO)) $(CARGO) test --release --test skynet_double

# The same tests with the double under valgrind: no memory error, no definite/indirect leak
# (messages taken by the direct functions on error paths, kept messages, the engine).
test-skynet-leak: $(SKYNET_DOUBLE) build
	@command -v valgrind >/dev/null || { echo "ERROR: valgrind not found (.ci/run installs it)"; exit 1; }
	SKC_DOUBLE_VALGRIND=1 SKC_DOUBLE=$(abspath $(SKYNET_DOUBLE)) SKC_LIB=$(abspath $(LIB_SO)) $(CARGO) test --release --test skynet_double -- --test-threads=2

skynet-semantics: build
	SKYNET_ROOT=$(SKYNET_ROOT) ab/semantics.sh $(LIB_SO) $(BUILD)

skynet-examples: build
	SKYNET_ROOT=$(SKYNET_ROOT) ab/examples.sh $(LIB_SO) $(BUILD)

skynet-faults: build
	SKYNET_ROOT=$(SKYNET_ROOT) ab/faults.sh $(LIB_SO) $(BUILD)

skynet-lifecycle: build
	SKYNET_ROOT=$(SKYNET_ROOT) ab/lifecycle.sh $(LIB_SO) $(BUILD)

# matplotlib for the chart, in a venv under the build dir (gnuplot is used instead when
# the venv cannot be made and gnuplot is installed; with neither, no chart).
ab-venv: $(AB_VENV)/.ok
$(AB_VENV)/.ok:
	@python3 -m venv $(AB_VENV) && $(AB_VENV)/bin/pip install -q matplotlib && touch $@ \
	  || echo "ab: could not install matplotlib into $(AB_VENV) (chart will use gnuplot if present)"

ab: build ab-venv
	@SKYNET_ROOT=$(SKYNET_ROOT) AB_VENV=$(AB_VENV) ab/ab.sh $(LIB_SO) $(AB_DIR)
