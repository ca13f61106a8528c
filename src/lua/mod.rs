//! The drop-in `skynet.cluster.core` Lua module (stock: `lualib-src/lua-cluster.c`).
//!
//! `api` resolves the host's Lua C API at load time (no Lua is linked into the library);
//! `module` implements the ten functions over [`crate::wire`].

pub(crate) mod api;
pub(crate) mod module;

pub use module::luaopen_skynet_cluster_core;
