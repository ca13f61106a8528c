//! The committed C header must be exactly what cbindgen generates from `src/capi` now.
//! Fix a failure with `make header` and commit `include/skynet_cluster.h`.

#[test]
fn committed_header_matches_generated() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/skynet_cluster.h"));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/skynet_cluster.h");
    let committed = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e} (run `make header`)"));
    assert!(
        committed == generated,
        "include/skynet_cluster.h differs from what cbindgen generates from src/capi: run `make header` and commit it"
    );
}
