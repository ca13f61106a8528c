//! cargo-fuzz (libFuzzer) target: `cargo +nightly fuzz run --features libfuzzer wire`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    skynet_cluster_fuzz::check_wire(data);
});
