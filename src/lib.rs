//! skynet-cluster: skynet's cluster layer in Rust.
//!
//! Layers (see README.md): `wire` (pure protocol codec), `seri` (skynet.pack format),
//! `lua` (the drop-in `skynet.cluster.core` module), `engine` (native transport),
//! `capi` (the C ABI). Data flows one way: bytes enter at `engine`, are cut by `wire`,
//! and leave through an adapter.

//!
//! The adapters are cargo features, all on by default (the cdylib carries them all):
//! `lua` (the drop-in module), `capi` (the C ABI, and the header generated from it),
//! `skynet` (the skynet C service; needs `lua`). The layers under them are always there.

#[cfg(feature = "capi")]
pub mod capi;
pub mod engine;
#[cfg(feature = "lua")]
pub mod lua;
pub mod seri;
#[cfg(feature = "skynet")]
pub mod skynet;
pub mod wire;
