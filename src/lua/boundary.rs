//! The boundary between Lua and Rust: how the module's functions raise Lua errors without
//! unwinding over Rust values (see `module.rs`), and the host's Lua API, resolved once.

use super::api::*;
use std::ffi::c_int;
use std::sync::OnceLock;

/// The host's Lua API, resolved by the first `luaopen_skynet_cluster_core`.
pub(super) static API: OnceLock<LuaApi> = OnceLock::new();

/// How a function ends in a Lua error. Built by the inner functions, raised by [`run`].
pub(crate) enum Raise {
    /// `luaL_error` semantics: the caller's position, then this text.
    Error(Vec<u8>),
    /// Re-run `luaL_checkinteger(L, arg)`, which fails with the host's wording.
    CheckInteger(c_int),
    /// Re-run `luaL_checklstring(L, arg)`.
    CheckString(c_int),
    /// Re-run `luaL_checktype(L, arg, LUA_TTABLE)`.
    CheckTable(c_int),
}

pub(crate) fn error(text: impl Into<Vec<u8>>) -> Raise {
    Raise::Error(text.into())
}

pub(crate) type LuaResult = Result<c_int, Raise>;

/// The shim every exported function goes through: catches panics, then raises with no
/// Rust value alive.
///
/// # SAFETY
/// `l` is the state Lua called us with; `f` honours the contract described in the module doc.
#[inline(always)]
pub(crate) unsafe fn run(l: *mut lua_State, f: impl FnOnce(&LuaApi, *mut lua_State) -> LuaResult) -> c_int {
    let Some(api) = API.get() else {
        // Unreachable: the functions are only reachable through the table luaopen built
        // after resolving the API. Without the API there is no way to raise.
        return 0;
    };
    // AssertUnwindSafe: on a panic nothing the closure touched is used again.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(api, l)));
    let raise = match outcome {
        Ok(Ok(n)) => return n,
        Ok(Err(raise)) => raise,
        Err(payload) => {
            drop(payload);
            error("skynet.cluster.core: internal error")
        }
    };
    // SAFETY: `raise` is moved into `raise_error`, which drops it before raising.
    unsafe { raise_error(api, l, raise) }
}

/// Raises `raise` as a Lua error. Never returns normally.
///
/// # SAFETY
/// `l` is valid. Every Rust value is dropped before `lua_error` or a `luaL_check*` runs.
pub(super) unsafe fn raise_error(api: &LuaApi, l: *mut lua_State, raise: Raise) -> c_int {
    // SAFETY (whole body): `l` is valid and has room: the functions below push at most two
    // values on top of a stack Lua sized for the call (LUA_MINSTACK = 20 free slots).
    unsafe {
        match raise {
            Raise::Error(text) => {
                (api.luaL_where)(l, 1);
                api.push_bytes(l, &text);
                drop(text);
                (api.lua_concat)(l, 2);
                return (api.lua_error)(l);
            }
            // These raise; they return only if the argument became valid in between,
            // which cannot happen: nothing runs between our check and this one.
            Raise::CheckInteger(arg) => {
                (api.luaL_checkinteger)(l, arg);
            }
            Raise::CheckString(arg) => {
                (api.luaL_checklstring)(l, arg, std::ptr::null_mut());
            }
            Raise::CheckTable(arg) => {
                (api.luaL_checktype)(l, arg, LUA_TTABLE);
            }
        }
        (api.luaL_where)(l, 1);
        api.push_bytes(l, b"invalid argument");
        (api.lua_concat)(l, 2);
        (api.lua_error)(l)
    }
}

/// Resolves the host's Lua API once (for every `luaopen_*` of the library). On failure
/// there is no way to raise a Lua error: the reason goes to stderr, `false` is returned.
pub(crate) fn resolve_api(module: &str) -> bool {
    if API.get().is_some() {
        return true;
    }
    match LuaApi::resolve() {
        Ok(api) => {
            let _ = API.set(api);
            true
        }
        Err(missing) => {
            eprintln!(
                "{module}: the host process does not export the Lua C API (`{missing}` not found); \
                 link the host with -Wl,-E or load Lua with RTLD_GLOBAL"
            );
            false
        }
    }
}
