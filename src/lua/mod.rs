//! The drop-in skynet.cluster.core Lua module.
