//! Generates the C header from `src/capi` into `$OUT_DIR/skynet_cluster.h`.
//! The committed copy lives in `include/`; `tests/header_drift.rs` fails when the two differ,
//! and `make header` refreshes the committed copy.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/capi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    if std::env::var_os("CARGO_FEATURE_CAPI").is_none() {
        return; // no C API, no header
    }
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("skynet_cluster.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/capi/mod.rs"))
        .generate()
        .expect("cbindgen could not generate the header from src/capi");
    bindings.write_to_file(&out);
}
