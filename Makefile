# skynet-cluster: top-level build. `make demo` runs the main job, `make test` runs every test.
# Each area adds its own targets in mk/<area>.mk and appends its test target to TESTS.

CARGO ?= cargo
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
RELEASE := $(TARGET_DIR)/release
LIB_SO := $(RELEASE)/libskynet_cluster.so
CLI := $(RELEASE)/skynet-cluster
# Where build products used by tests live (Lua interpreters, C test programs, module layout).
BUILD := $(TARGET_DIR)/skc
CC ?= cc

TESTS :=

.PHONY: all build test demo bench header clean

all: build

build:
	$(CARGO) build --release --lib --bins

$(LIB_SO) $(CLI): build

include $(sort $(wildcard mk/*.mk))

test: lint test-rust $(TESTS)
	@echo "make test: all tests passed"

# The tree is formatted (rustfmt.toml) and clippy-clean, every target, warnings as errors.
.PHONY: lint
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

.PHONY: test-rust
test-rust:
	$(CARGO) test --release

# Refresh the committed C header from src/capi (CI fails when it drifts, see tests/header_drift.rs).
header:
	$(CARGO) build --release --lib
	cp "$$(ls -t $(RELEASE)/build/skynet-cluster-*/out/skynet_cluster.h | head -n1)" include/skynet_cluster.h

clean:
	$(CARGO) clean
