//! `cluster.call` and `cluster.send` straight from the caller's worker: the Lua module
//! `skcluster.direct`, in the same `.so` as the C service, that `lualib/skynet/cluster.lua`
//! loads with `package.loadlib` (same file, so the same library instance and the same
//! running service).
//!
//! Without it a call is one skynet message from the caller to `skcluster`, run later on
//! some thread only to hand the request to the engine. With it the caller's own thread
//! encodes the request into the link's send buffer (and writes it, or leaves it to the
//! batch it is part of), and the answer comes back as before: one `PTYPE_RESPONSE` or
//! `PTYPE_ERROR` to the caller with its session. A call then costs one skynet message on
//! the calling node (the answer) and a push none.
//!
//! # Functions
//!
//! * `call(node, address, session, source, msg, sz)`: `session` is the caller's (from
//!   `skynet.genid()`), `source` its handle; the caller then waits on the session as
//!   `skynet.call` does (cluster.lua uses skynet.lua's own `yield_call`).
//! * `send(node, address, msg, sz)`: a push.
//!
//! `node` is a string, `address` a number (truncated to 32 bits; a non-integral float is
//! address 0, as the message path reads it) or a string (a name); `msg, sz` is what
//! `skynet.pack` returns. **Ownership:** both functions take `msg` on every path, success
//! or error, and free it with `skynet_free` (the payload is copied into the link's send
//! buffer first), as `skynet.call` hands its message to skynet.
//!
//! Both return `true` when the request went to the engine, `false` when the service is
//! no longer running (released: cluster.lua then falls back to the message path, which
//! fails as it always did). A wrong argument raises `bad argument #N (... expected, got
//! ...)` (session and source through the host's own `luaL_checkinteger`); a node name
//! that is not UTF-8 is logged and the call answered with `PTYPE_ERROR` (the message path
//! does the same).

use super::batching::MsgBuf;
use super::Core;
use crate::engine::Address;
use crate::lua::api::*;
use crate::lua::module::{error, push_module_table, resolve_api, run, LuaResult, Raise};
use parking_lot::RwLock;
use std::ffi::{c_int, c_void};
use std::sync::Arc;

/// The running service of this process (skynet runs one `skcluster`), set by
/// `skcluster_init` and cleared by `skcluster_release`.
static CURRENT: RwLock<Option<Arc<Core>>> = RwLock::new(None);

pub(super) fn set_current(core: Arc<Core>) {
    *CURRENT.write() = Some(core);
}

/// Forgets `core` if it is the current service.
pub(super) fn clear_current(core: &Arc<Core>) {
    let mut c = CURRENT.write();
    if c.as_ref().is_some_and(|x| Arc::ptr_eq(x, core)) {
        *c = None;
    }
}

/// Reads `msg, sz` at `idx, idx + 1` and takes ownership of the buffer at once, so that
/// every later error path frees it.
///
/// # SAFETY
/// `l` is the state Lua called us with.
unsafe fn take_message(
    api: &LuaApi,
    l: *mut lua_State,
    idx: c_int,
    free: unsafe extern "C" fn(*mut c_void),
) -> Result<MsgBuf, Raise> {
    // SAFETY (whole body): `l` is valid, `idx` and `idx + 1` acceptable indices.
    unsafe {
        if (api.lua_type)(l, idx) != LUA_TLIGHTUSERDATA {
            return Err(bad_type(api, l, idx, "lightuserdata"));
        }
        let ptr = (api.lua_touserdata)(l, idx);
        // A `skynet.pack` message (skynet_malloc): ours from here on, freed on drop.
        let mut m = MsgBuf { ptr, len: 0, free };
        match api.to_integer(l, idx + 1) {
            Some(n) if n >= 0 && (n as u64) <= isize::MAX as u64 => m.len = n as usize,
            Some(_) => return Err(error("invalid message size")),
            None => {
                drop(m);
                return Err(Raise::CheckInteger(idx + 1));
            }
        }
        if ptr.is_null() && m.len > 0 {
            return Err(error("NULL message with a size"));
        }
        Ok(m)
    }
}

/// `bad argument #2 (number or string expected, got table)`, in the host's wording.
///
/// # SAFETY
/// `l` is valid, `idx` acceptable.
unsafe fn bad_type(api: &LuaApi, l: *mut lua_State, idx: c_int, expected: &str) -> Raise {
    // SAFETY: per this function's contract.
    let got = unsafe { api.type_name(l, idx) };
    error(format!("bad argument #{idx} ({expected} expected, got {})", String::from_utf8_lossy(got)))
}

/// # SAFETY
/// `l` is the state Lua called us with.
unsafe fn request(api: &LuaApi, l: *mut lua_State, call: bool) -> LuaResult {
    let core = CURRENT.read().clone();
    let free = core.as_ref().map_or_else(super::api::skynet_free, |c| c.api.free);
    let msg_idx = if call { 5 } else { 3 };
    // SAFETY: per this function's contract.
    let msg = unsafe { take_message(api, l, msg_idx, free)? };
    let Some(core) = core else {
        drop(msg);
        // SAFETY: `l` is valid with room for one value (LUA_MINSTACK).
        unsafe { (api.lua_pushboolean)(l, 0) };
        return Ok(1);
    };
    // SAFETY (block): `l` is valid; indices 1..=4 are acceptable; the borrowed strings stay
    // valid while their values are on the stack, i.e. for this whole call.
    let (node, addr, session, source) = unsafe {
        if (api.lua_type)(l, 1) != LUA_TSTRING {
            drop(msg);
            return Err(bad_type(api, l, 1, "string"));
        }
        let node = api.to_bytes(l, 1).unwrap_or_default();
        let addr = match (api.lua_type)(l, 2) {
            LUA_TNUMBER => Address::Id(api.to_integer(l, 2).unwrap_or(0) as u32),
            LUA_TSTRING => Address::Name(api.to_bytes(l, 2).unwrap_or_default()),
            _ => {
                drop(msg);
                return Err(bad_type(api, l, 2, "number or string"));
            }
        };
        let (session, source) = if call {
            match (api.to_integer(l, 3), api.to_integer(l, 4)) {
                (Some(s), Some(h)) if s > 0 && s <= i32::MAX as i64 => (s as c_int, h as u32),
                (Some(_), Some(_)) => {
                    drop(msg);
                    return Err(error("session must be a positive skynet session"));
                }
                (None, _) => {
                    drop(msg);
                    return Err(Raise::CheckInteger(3));
                }
                (_, None) => {
                    drop(msg);
                    return Err(Raise::CheckInteger(4));
                }
            }
        } else {
            (0, 0)
        };
        (node, addr, session, source)
    };
    match std::str::from_utf8(node) {
        Ok(node) => core.submit_direct(node, source, session, addr, msg.as_slice()),
        Err(_) => {
            core.log("skcluster: node name is not UTF-8");
            if call {
                core.send(source, super::api::PTYPE_ERROR, session, &[]);
            }
        }
    }
    drop(msg);
    // SAFETY: `l` is valid with room for one value (LUA_MINSTACK).
    unsafe { (api.lua_pushboolean)(l, 1) };
    Ok(1)
}

unsafe extern "C-unwind" fn l_call(l: *mut lua_State) -> c_int {
    // SAFETY: Lua called us with a valid state; `run` upholds the raising rules.
    unsafe { run(l, |api, l| request(api, l, true)) }
}

unsafe extern "C-unwind" fn l_send(l: *mut lua_State) -> c_int {
    // SAFETY: as in `l_call`.
    unsafe { run(l, |api, l| request(api, l, false)) }
}

/// # SAFETY
/// `l` is the state Lua called us with.
unsafe fn open_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    if CURRENT.read().is_none() {
        return Err(error("skcluster is not running in this process"));
    }
    // SAFETY: `l` is valid; one table plus one function slot are used.
    unsafe { push_module_table(api, l, &[(c"call", l_call), (c"send", l_send)]) };
    Ok(1)
}

/// Entry point of `package.loadlib(<path of skcluster.so>, "luaopen_skcluster_direct")`.
/// Raises when the C service is not running in this process.
///
/// # Safety
/// Called by Lua with a valid state.
#[no_mangle]
pub unsafe extern "C-unwind" fn luaopen_skcluster_direct(l: *mut lua_State) -> c_int {
    if !resolve_api("skcluster.direct") {
        return 0;
    }
    // SAFETY: Lua called us with a valid state; `run` upholds the raising rules.
    unsafe { run(l, |api, l| open_inner(api, l)) }
}
