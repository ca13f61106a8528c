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

# TLS against plain text (issue 14's speed goals), one run: `certs` makes a CA and two node
# certificates in a temp dir, one `serve --tls prefer` serves plain and TLS clients on one
# port, and `bench --vs-plain` measures each row plain then TLS (tiny x conc 1, 64 and 1 MiB
# x conc 1, 8), BENCH_TLS_ROUNDS times, and prints the medians with each goal met or not.
# About 8 x BENCH_TLS_DURATION x BENCH_TLS_ROUNDS seconds (72 s by default).
BENCH_TLS_DURATION ?= 3
BENCH_TLS_ROUNDS ?= 3

.PHONY: bench-tls
bench-tls: build
	@dir=$$(mktemp -d /tmp/skc-bench-tls.XXXXXX) || exit 1; \
	trap 'kill $$pid 2>/dev/null; rm -rf "$$dir"' EXIT INT TERM; \
	$(CLI) certs "$$dir" server client > /dev/null || exit 1; \
	$(CLI) serve --listen 127.0.0.1:0 --port-file "$$dir/port" --tls prefer \
		--tls-ca "$$dir/ca.pem" --tls-cert "$$dir/server.pem" --tls-key "$$dir/server.key" \
		> "$$dir/serve.log" 2>&1 & \
	pid=$$!; \
	for i in $$(seq 1 200); do [ -s "$$dir/port" ] && break; sleep 0.05; done; \
	[ -s "$$dir/port" ] || { echo "bench-tls: server did not start"; cat "$$dir/serve.log"; exit 1; }; \
	echo "bench-tls: server pid $$pid on $$(cat $$dir/port), --tls prefer"; \
	$(CLI) bench --connect "$$(cat $$dir/port)" --vs-plain --rounds $(BENCH_TLS_ROUNDS) \
		--duration $(BENCH_TLS_DURATION) --tls require --tls-name server --tls-ca "$$dir/ca.pem" \
		--tls-cert "$$dir/client.pem" --tls-key "$$dir/client.key"
