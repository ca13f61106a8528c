//! The drop-in `skynet.cluster.core` Lua module (stock: `lualib-src/lua-cluster.c`).
//!
//! `api` resolves the host's Lua C API at load time (no Lua is linked into the library);
//! `module` builds the module table of the ten functions, which live in `request` and
//! `response` (over [`crate::wire`]); `frames` hands frames to Lua; `boundary` raises Lua
//! errors without unwinding over Rust values.

pub(crate) mod api;
mod boundary;
mod frames;
pub(crate) mod module;
mod request;
mod response;

pub use module::luaopen_skynet_cluster_core;
