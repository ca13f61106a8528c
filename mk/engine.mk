# Engine (issue 5): the native transport, the skynet-cluster CLI, its demo.
# The engine tests (tests/engine_*.rs) run under test-rust (`cargo test --release`);
# `make test-engine` runs just them.

ENGINE_DEMO_DURATION ?= 0.4
ENGINE_DEMO_DIR := $(BUILD)/engine-demo

.PHONY: demo engine-demo test-engine

demo: engine-demo

# Starts `skynet-cluster serve` in the background on a free loopback port, runs the bench
# matrix against it (tiny/1k/16k/64k/1m x conc 1/8/64/256, pushes/s, each next to the raw
# TCP floor), prints the table and stops the server. About 30-50 s.
engine-demo: build
	@mkdir -p $(ENGINE_DEMO_DIR)
	@rm -f $(ENGINE_DEMO_DIR)/port
	@$(CLI) serve --listen 127.0.0.1:0 --port-file $(ENGINE_DEMO_DIR)/port > $(ENGINE_DEMO_DIR)/serve.log 2>&1 & \
	pid=$$!; \
	trap 'kill $$pid 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 1 200); do [ -s $(ENGINE_DEMO_DIR)/port ] && break; sleep 0.05; done; \
	[ -s $(ENGINE_DEMO_DIR)/port ] || { echo "engine-demo: server did not start"; cat $(ENGINE_DEMO_DIR)/serve.log; exit 1; }; \
	echo "engine-demo: server pid $$pid on $$(cat $(ENGINE_DEMO_DIR)/port)"; \
	$(CLI) bench --connect $$(cat $(ENGINE_DEMO_DIR)/port) --server-pid $$pid --duration $(ENGINE_DEMO_DURATION)

test-engine:
	$(CARGO) test --release --test engine_core --test engine_faults --test engine_transcripts
