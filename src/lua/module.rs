//! The ten functions of `skynet.cluster.core`, byte-compatible with stock `lua-cluster.c`.
//!
//! # How errors are raised without unwinding over Rust values
//! Each function is split in two. The inner function (`packrequest`, ...) reads its
//! arguments with the non-raising API (`lua_tointegerx`, `lua_tolstring`, ...), does its
//! work, and returns `Result<c_int, Raise>`. It never calls a raising `luaL_check*`
//! function. The outer shim ([`run`]) catches panics, and on `Err` drops every Rust value
//! and only then raises: either by re-running the host's own check (`luaL_checkinteger`
//! etc., so the text is the host's exact wording, "bad argument #4 to 'packrequest'
//! (number expected, got no value)"), or with `luaL_where(L, 1)` + the message, which is
//! what `luaL_error` does.
//!
//! Calls that can raise on their own (allocation failure in `lua_pushlstring`, a
//! metamethod in `lua_geti`/`lua_seti`) are made only while the Rust frames hold plain
//! data (integers, borrowed slices, raw pointers), so a `longjmp` skips no destructor.
//!
//! # Memory ownership (same as stock)
//! * `packrequest`/`packpush` take ownership of the lightuserdata message and free it with
//!   the host's `free`, on success and on every error after the pointer check.
//! * `append` takes ownership of a lightuserdata argument and frees it.
//! * `unpackrequest` (types 0x00/0x80/0x02/0x03) and `concat` return a new buffer from the
//!   host's `malloc`; the caller owns it.
//! * `packresponse` and `unpackrequest` never free their input.

use super::api::*;
pub(crate) use super::boundary::{error, resolve_api, run, LuaResult, Raise};
use super::frames::c_str_prefix;
use super::request::*;
use super::response::*;
use std::ffi::{c_int, CStr};

/// `nodename()`: hostname (bytes `<= ' '` as a signed C char replaced by `_`) then the pid.
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn lnodename_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    let name = node_name();
    // SAFETY: `l` is valid with a free slot.
    unsafe { api.push_bytes(l, &name) };
    Ok(1)
}

/// The node name stock skynet puts in trace tags: `<hostname><pid>`, or `noname<pid>`.
pub(crate) fn node_name() -> Vec<u8> {
    let mut host = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length.
    let rc = unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut out = Vec::with_capacity(64);
    if rc == 0 {
        // Stock compares a plain (signed) char with ' ', so bytes >= 0x80 count as blank too.
        out.extend(c_str_prefix(&host).iter().map(|&b| if (b as i8) <= b' ' as i8 { b'_' } else { b }));
    } else {
        out.extend_from_slice(b"noname");
    }
    out.extend_from_slice(pid.to_string().as_bytes());
    out
}

macro_rules! lua_functions {
    ($( $lua_name:literal => $shim:ident : $inner:ident ),* $(,)?) => {
        $(
            unsafe extern "C-unwind" fn $shim(l: *mut lua_State) -> c_int {
                // SAFETY: Lua calls this with a valid state; `run` upholds the raising rules.
                unsafe { run(l, |api, l| $inner(api, l)) }
            }
        )*
        const FUNCTIONS: &[(&CStr, lua_CFunction)] = &[ $( (c_name(concat!($lua_name, "\0")), $shim) ),* ];
    };
}

lua_functions! {
    "packrequest" => lpackrequest: lpackrequest_inner,
    "packpush" => lpackpush: lpackpush_inner,
    "packtrace" => lpacktrace: lpacktrace_inner,
    "unpackrequest" => lunpackrequest: lunpackrequest_inner,
    "packresponse" => lpackresponse: lpackresponse_inner,
    "unpackresponse" => lunpackresponse: lunpackresponse_inner,
    "append" => lappend: lappend_inner,
    "concat" => lconcat: lconcat_inner,
    "isname" => lisname: lisname_inner,
    "nodename" => lnodename: lnodename_inner,
}

/// Builds the module table. Raises when the host's Lua is neither 5.4 nor 5.5.
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn open_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY (whole body): `l` is valid; one table plus one function slot are used.
    unsafe {
        let version = (api.lua_version)(l);
        if version != 504.0 && version != 505.0 {
            return Err(error(format!(
                "skynet.cluster.core supports Lua 5.4 and 5.5, the host's Lua core is {version}"
            )));
        }
        push_module_table(api, l, FUNCTIONS);
        Ok(1)
    }
}

/// A function's name for a module table, checked at compile time.
const fn c_name(with_nul: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("a Lua function name ends with its only NUL"),
    }
}

/// Pushes a new table holding `functions` (name, C function): what a `luaopen_*` of the
/// library returns (`skynet.cluster.core`, `skcluster.direct`).
///
/// # SAFETY
/// `l` is a valid state with room for two more values (a table and a function).
pub(crate) unsafe fn push_module_table(api: &LuaApi, l: *mut lua_State, functions: &[(&CStr, lua_CFunction)]) {
    // SAFETY: per this function's contract; each name is NUL-terminated (a `CStr`), and
    // lua_setfield pops the function pushed just before it.
    unsafe {
        (api.lua_createtable)(l, 0, functions.len() as c_int);
        for (name, f) in functions {
            (api.lua_pushcclosure)(l, *f, 0);
            (api.lua_setfield)(l, -2, name.as_ptr());
        }
    }
}

/// Entry point `require "skynet.cluster.core"` calls.
///
/// The first call resolves the Lua C API from the host process (see `api.rs`). When the
/// host does not export it, there is no way to raise a Lua error: the reason goes to
/// stderr and nothing is returned.
///
/// # SAFETY
/// Called by Lua's `require` with a valid state.
#[no_mangle]
pub unsafe extern "C-unwind" fn luaopen_skynet_cluster_core(l: *mut lua_State) -> c_int {
    if !resolve_api("skynet.cluster.core") {
        return 0;
    }
    // SAFETY: Lua called us with a valid state; `run` upholds the raising rules.
    unsafe { run(l, |api, l| open_inner(api, l)) }
}
