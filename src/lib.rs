//! skynet-cluster: skynet's cluster layer in Rust.
//!
//! Layers (see README.md): `wire` (pure protocol codec), `seri` (skynet.pack format),
//! `lua` (the drop-in `skynet.cluster.core` module), `engine` (native transport),
//! `capi` (the C ABI). Data flows one way: bytes enter at `engine`, are cut by `wire`,
//! and leave through an adapter.

pub mod capi;
pub mod engine;
pub mod literal;
pub mod lua;
pub mod seri;
pub mod skynet;
pub mod wire;
