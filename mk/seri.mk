# skynet.pack codec (issue 4): src/seri, tests/seri_golden.rs, tests/seri_props.rs, benches/seri.rs, fuzz/.
#
#   make test-seri         nothing extra: the seri tests are cargo tests, run by `make test-rust`
#   make fuzz-seri         fuzz seri::decode for FUZZ_SECONDS (default 300): cargo fuzz (libFuzzer,
#                          nightly) when `cargo +nightly fuzz` is installed, else the plain harness
#   make fuzz-seri-plain   the plain mutational harness only (stable Rust, no libFuzzer); prints the
#                          execution count
#   make bench-seri        criterion benchmarks (short measurement)
#
# The fuzz crate has its own [workspace], so it never enters the main build. Not part of TESTS.

FUZZ_SECONDS ?= 300
FUZZ_NIGHTLY ?= +nightly

.PHONY: test-seri fuzz-seri fuzz-seri-plain bench-seri

test-seri:
	@true

fuzz-seri:
	@if $(CARGO) $(FUZZ_NIGHTLY) fuzz --version >/dev/null 2>&1; then \
		echo "fuzz-seri: cargo fuzz (libFuzzer) for $(FUZZ_SECONDS) s"; \
		cd fuzz && $(CARGO) $(FUZZ_NIGHTLY) fuzz run --features libfuzzer decode -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=65536; \
	else \
		echo "fuzz-seri: cargo fuzz not available, running the plain harness"; \
		$(MAKE) --no-print-directory fuzz-seri-plain; \
	fi

fuzz-seri-plain:
	cd fuzz && $(CARGO) run --release --bin fuzz_seri -- $(FUZZ_SECONDS)

bench-seri:
	$(CARGO) bench --bench seri -- --measurement-time 2 --warm-up-time 1
