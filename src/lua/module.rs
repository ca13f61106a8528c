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
use crate::wire::{self, Address, DecodeError, Request, RequestKind, Response, MULTI_PART};
use std::ffi::{c_int, c_void, CStr};
use std::mem::MaybeUninit;
use std::sync::OnceLock;

/// Stack scratch for one frame: the largest frame built in one piece is a single request
/// with a 255-byte name and a 32767-byte payload (2 + 6 + 255 + 32767 bytes).
const TEMP_LENGTH: usize = 0x8200;

/// The host's Lua API, resolved by the first `luaopen_skynet_cluster_core`.
static API: OnceLock<LuaApi> = OnceLock::new();

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
unsafe fn raise_error(api: &LuaApi, l: *mut lua_State, raise: Raise) -> c_int {
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

/// Frames up to this size are built in a small stack buffer, so the common tiny calls do
/// not pay for touching (stack-probing) the 33 KiB scratch.
const SMALL_FRAME: usize = 512;

/// Builds one frame of exactly `len` bytes in stack scratch and pushes it as a Lua string.
///
/// Lua 5.5's external strings (`lua_pushexternalstring`) would save the copy into Lua, but
/// their bytes do not count as GC debt: with frames of 32 KiB the collector then runs far
/// too rarely, garbage piles up and the benchmark got slower (0.72-1.0x of stock on
/// `packresponse` 64 KiB), so they are not used.
///
/// # SAFETY
/// `l` is valid with a free slot. `write` must write exactly `len` bytes (else it panics on
/// overflow, or the frame is refused), and `len <= TEMP_LENGTH`.
#[inline(always)] // SAFETY: see the contract above.
unsafe fn push_frame(
    api: &LuaApi,
    l: *mut lua_State,
    len: usize,
    write: impl FnOnce(&mut &mut [MaybeUninit<u8>]),
) -> Result<(), Raise> {
    // SAFETY: forwarded contract.
    unsafe {
        if len <= SMALL_FRAME {
            fill_and_push::<SMALL_FRAME>(api, l, len, write)
        } else {
            push_large_frame(api, l, len, write)
        }
    }
}

/// [`push_frame`] for frames past `SMALL_FRAME`. SAFETY: the contract of [`push_frame`].
#[inline(never)]
unsafe fn push_large_frame(
    api: &LuaApi,
    l: *mut lua_State,
    len: usize,
    write: impl FnOnce(&mut &mut [MaybeUninit<u8>]),
) -> Result<(), Raise> {
    // SAFETY: forwarded contract.
    unsafe { fill_and_push::<TEMP_LENGTH>(api, l, len, write) }
}

/// Fills a stack buffer of `N` bytes and pushes it. SAFETY: the contract of [`push_frame`].
#[inline(always)]
unsafe fn fill_and_push<const N: usize>(
    api: &LuaApi,
    l: *mut lua_State,
    len: usize,
    write: impl FnOnce(&mut &mut [MaybeUninit<u8>]),
) -> Result<(), Raise> {
    let mut buf = [MaybeUninit::<u8>::uninit(); N];
    let mut cursor: &mut [MaybeUninit<u8>] = &mut buf;
    write(&mut cursor);
    let written = N - cursor.len();
    if written != len {
        return Err(error("skynet.cluster.core: internal error (frame size)"));
    }
    // SAFETY: the first `written` bytes of `buf` were initialised by `write`; Lua copies them.
    unsafe { (api.lua_pushlstring)(l, buf.as_ptr().cast(), written) };
    Ok(())
}

/// Copies `bytes` into a new buffer from the host's `malloc` and pushes it as
/// `lightuserdata, size`, which the caller then owns (stock's `return_buffer`).
///
/// # SAFETY
/// `l` is valid with two free slots.
#[inline]
unsafe fn push_new_buffer(api: &LuaApi, l: *mut lua_State, bytes: &[u8]) -> Result<(), Raise> {
    // At least one byte so that an empty payload is still a non-NULL pointer (as glibc's
    // malloc(0), and skynet_malloc, give), which the receiving side can free.
    // SAFETY: plain malloc; the result is checked for NULL before use.
    let ptr = unsafe { libc::malloc(bytes.len().max(1)) }.cast::<u8>();
    if ptr.is_null() {
        return Err(error("not enough memory"));
    }
    // SAFETY: `ptr` has room for `bytes.len()` bytes and does not overlap `bytes`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len());
        (api.lua_pushlightuserdata)(l, ptr.cast());
        (api.lua_pushinteger)(l, bytes.len() as lua_Integer);
    }
    Ok(())
}

/// Frees a buffer the caller handed over (a lightuserdata from the host's `malloc`).
///
/// # SAFETY
/// `ptr` came from the host's `malloc` and is not used again.
#[inline]
unsafe fn free_message(ptr: *mut c_void) {
    // SAFETY: per this function's contract.
    unsafe { libc::free(ptr) }
}

/// `%s` stops at the first NUL: stock formats names with it, so the texts do too.
fn c_str_prefix(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}

/// `packrequest(addr, session, msg, sz)` / `packpush(...)`.
///
/// # SAFETY
/// Called by Lua through [`run`]. `msg` must point to `sz` readable bytes from the host's
/// `malloc` (the same contract as stock: it comes from `skynet.pack`).
unsafe fn packrequest(api: &LuaApi, l: *mut lua_State, kind: RequestKind) -> LuaResult {
    // SAFETY (whole body): `l` is valid; indices 1..4 are acceptable indices; `msg` is
    // owned by us from the pointer check on and freed exactly once on every path.
    unsafe {
        // Only a light userdata is a message; stock would also pass a full userdata's block
        // to free(), which corrupts the heap.
        if (api.lua_type)(l, 3) != LUA_TLIGHTUSERDATA {
            return Err(error("Invalid request message"));
        }
        let msg = (api.lua_touserdata)(l, 3);
        if msg.is_null() {
            return Err(error("Invalid request message"));
        }
        // Stock raises from luaL_checkinteger here without freeing msg (a leak). We free
        // it first and then let the host raise the same error.
        let Some(sz) = api.to_integer(l, 4) else {
            free_message(msg);
            return Err(Raise::CheckInteger(4));
        };
        let Some(session) = api.to_integer(l, 2) else {
            free_message(msg);
            return Err(Raise::CheckInteger(2));
        };
        // The session passes through a C int: 0x80000000 is negative, 2^32+1 is 1.
        let session = session as i32;
        if session <= 0 {
            free_message(msg);
            return Err(error(format!("Invalid request session {session}")));
        }
        // Stock reads (uint32_t)sz bytes, so a negative size would read 4 GiB and crash.
        if sz < 0 {
            free_message(msg);
            return Err(error(format!("Invalid request size {sz}")));
        }
        let sz = sz as u32 as usize;
        let addr = if (api.lua_type)(l, 1) == LUA_TNUMBER {
            // lua_tointeger semantics: a non-integral float is 0; truncate to 32 bits.
            Address::Id(api.to_integer(l, 1).unwrap_or(0) as u32)
        } else {
            match api.to_bytes(l, 1) {
                None => {
                    free_message(msg);
                    let mut text = b"name is not a string, it's a ".to_vec();
                    text.extend_from_slice(api.type_name(l, 1));
                    return Err(error(text));
                }
                Some(name) if name.is_empty() || name.len() > wire::MAX_NAME_LEN => {
                    free_message(msg);
                    let mut text = b"name length is invalid, must be between 1 and 255 characters: ".to_vec();
                    text.extend_from_slice(c_str_prefix(name));
                    return Err(error(text));
                }
                Some(name) => Address::Name(name),
            }
        };
        let session = session as u32;
        let payload = std::slice::from_raw_parts_mut(msg.cast::<u8>(), sz);
        let encoded = pack_request_frames(api, l, addr, session, payload, kind);
        free_message(msg);
        encoded
    }
}

/// Pushes the frames of one request: `frame, next_session` for a single frame, or
/// `header, next_session, {parts...}` for a multi-part one.
///
/// # SAFETY
/// `l` is valid; `payload` is the message buffer we own and free after this returns, so
/// its bytes may be overwritten once they have been copied into Lua.
unsafe fn pack_request_frames(
    api: &LuaApi,
    l: *mut lua_State,
    addr: Address<'_>,
    session: u32,
    payload: &mut [u8],
    kind: RequestKind,
) -> LuaResult {
    let next = wire::next_session(session) as lua_Integer;
    let len = payload.len();
    // SAFETY (whole body): `l` is valid with the free slots Lua guarantees a C function
    // (LUA_MINSTACK); every pushed value is popped or returned.
    unsafe {
        if !wire::request_is_multi(len) {
            let field = if kind == RequestKind::Push { 0 } else { session };
            let mut result = Ok(());
            push_frame(api, l, wire::request_single_frame_len(addr, len), |w| {
                result = wire::encode_request_single(w, addr, field, &*payload)
            })?;
            result.map_err(|e| error(e.to_string()))?;
            (api.lua_pushinteger)(l, next);
            return Ok(2);
        }
        let mut result = Ok(());
        push_frame(api, l, wire::multi_header_frame_len(addr), |w| {
            result = wire::encode_multi_header(w, addr, session, len, kind)
        })?;
        result.map_err(|e| error(e.to_string()))?;
        (api.lua_pushinteger)(l, next);

        let parts = len.div_ceil(MULTI_PART);
        (api.lua_createtable)(l, parts as c_int, 0);
        // Part 1 is assembled in stack scratch. Every later part is assembled in place: its
        // 7-byte header overwrites the tail of the previous chunk, which Lua has already
        // copied. One copy per byte instead of stock's two.
        let first = &payload[..MULTI_PART];
        push_frame(api, l, first.len() + wire::PART_HEADER, |w| {
            wire::encode_request_part(w, session, first, parts == 1)
        })?;
        (api.lua_rawseti)(l, -2, 1);
        for i in 1..parts {
            let start = i * MULTI_PART;
            let end = (start + MULTI_PART).min(len);
            let header = wire::request_part_header(session, end - start, i + 1 == parts);
            let frame = &mut payload[start - wire::PART_HEADER..end];
            frame[..wire::PART_HEADER].copy_from_slice(&header);
            api.push_bytes(l, frame);
            (api.lua_rawseti)(l, -2, (i + 1) as lua_Integer);
        }
        Ok(3)
    }
}

/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn lpackrequest_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY: forwarded contract.
    unsafe { packrequest(api, l, RequestKind::Call) }
}

/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn lpackpush_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY: forwarded contract.
    unsafe { packrequest(api, l, RequestKind::Push) }
}

/// `packtrace(tag)`: the 0x04 frame.
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn lpacktrace_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY: `l` is valid; index 1 is acceptable.
    let Some(tag) = (unsafe { api.to_bytes(l, 1) }) else {
        return Err(Raise::CheckString(1));
    };
    if tag.len() > wire::MAX_TRACE_TAG {
        return Err(error(format!("trace tag is too long : {}", tag.len() as i32)));
    }
    let mut result = Ok(());
    // SAFETY: `l` is valid with a free slot; the frame is at most 0x8003 bytes.
    unsafe { push_frame(api, l, tag.len() + 3, |w| result = wire::encode_trace(w, tag))? };
    result.map_err(|e| error(e.to_string()))?;
    Ok(1)
}

/// `unpackrequest(string)` or `unpackrequest(lightuserdata, size)`.
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn lunpackrequest_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY (whole body): `l` is valid; a lightuserdata argument points to `size` readable
    // bytes (the caller's contract, as in stock: it is a message skynet delivered).
    unsafe {
        let (ptr, sz): (*const u8, i64) = if (api.lua_type)(l, 1) == LUA_TLIGHTUSERDATA {
            let ptr = (api.lua_touserdata)(l, 1).cast::<u8>().cast_const();
            let Some(sz) = api.to_integer(l, 2) else {
                return Err(Raise::CheckInteger(2));
            };
            // Stock stores the size in a C int.
            (ptr, sz as i32 as i64)
        } else {
            let Some(bytes) = api.to_bytes(l, 1) else {
                return Err(Raise::CheckString(1));
            };
            (bytes.as_ptr(), bytes.len() as i64)
        };
        if sz == 0 {
            return Err(error(DecodeError::Empty.to_string()));
        }
        if ptr.is_null() {
            return Err(error("Invalid cluster message (NULL pointer)"));
        }
        if sz < 0 {
            return Err(error(DecodeError::for_bad_length(*ptr, sz).to_string()));
        }
        let body = std::slice::from_raw_parts(ptr, sz as usize);
        match wire::decode_request(body).map_err(|e| error(e.to_string()))? {
            Request::Single { addr, session, payload } => {
                push_address(api, l, addr);
                (api.lua_pushinteger)(l, session as lua_Integer);
                push_new_buffer(api, l, payload)?;
                if session == 0 {
                    (api.lua_pushnil)(l);
                    (api.lua_pushboolean)(l, 1); // a push: no response
                    return Ok(6);
                }
                Ok(4)
            }
            Request::MultiHeader { addr, session, total, push } => {
                push_address(api, l, addr);
                (api.lua_pushinteger)(l, session as lua_Integer);
                (api.lua_pushnil)(l);
                (api.lua_pushinteger)(l, total as lua_Integer);
                (api.lua_pushboolean)(l, 1); // parts follow
                (api.lua_pushboolean)(l, push as c_int);
                Ok(6)
            }
            Request::Part { session, data, last } => {
                (api.lua_pushboolean)(l, 0); // no address
                (api.lua_pushinteger)(l, session as lua_Integer);
                push_new_buffer(api, l, data)?;
                (api.lua_pushboolean)(l, (!last) as c_int); // more parts follow
                Ok(5)
            }
            Request::Trace { tag } => {
                api.push_bytes(l, tag);
                Ok(1)
            }
        }
    }
}

/// # SAFETY
/// `l` is valid with a free slot.
#[inline]
unsafe fn push_address(api: &LuaApi, l: *mut lua_State, addr: Address<'_>) {
    // SAFETY: per this function's contract.
    unsafe {
        match addr {
            Address::Id(id) => (api.lua_pushinteger)(l, id as lua_Integer),
            Address::Name(name) => api.push_bytes(l, name),
        }
    }
}

/// `packresponse(session, ok, msg, sz)` or `packresponse(session, ok, string)`.
/// Never frees `msg`: it came from `skynet.rawcall` and stays the caller's.
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn lpackresponse_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY (whole body): `l` is valid; a userdata message points to `sz` readable bytes
    // (the caller's contract, as in stock).
    unsafe {
        let Some(session) = api.to_integer(l, 1) else {
            return Err(Raise::CheckInteger(1));
        };
        let session = session as u32;
        let ok = (api.lua_toboolean)(l, 2) != 0;
        let payload: &[u8] = if (api.lua_type)(l, 3) == LUA_TSTRING {
            api.to_bytes(l, 3).unwrap_or_default()
        } else {
            let ptr = (api.lua_touserdata)(l, 3).cast::<u8>().cast_const();
            let Some(sz) = api.to_integer(l, 4) else {
                return Err(Raise::CheckInteger(4));
            };
            // Stock casts to size_t and would read far out of bounds; refuse instead. A full
            // userdata knows its size, so it is bounds-checked too.
            let full_userdata_too_small =
                (api.lua_type)(l, 3) != LUA_TLIGHTUSERDATA && !ptr.is_null() && sz as u64 > (api.lua_rawlen)(l, 3);
            if sz < 0 || (ptr.is_null() && sz != 0) || full_userdata_too_small {
                return Err(error(format!("Invalid response message (size={sz})")));
            }
            if sz == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(ptr, sz as usize)
            }
        };
        if ok && wire::response_is_multi(payload.len()) {
            let parts = payload.len().div_ceil(MULTI_PART);
            (api.lua_createtable)(l, (parts + 1) as c_int, 0);
            push_frame(api, l, 11, |w| wire::encode_response_begin(w, session, payload.len() as u32))?;
            (api.lua_rawseti)(l, -2, 1);
            for (i, chunk) in payload.chunks(MULTI_PART).enumerate() {
                push_frame(api, l, chunk.len() + 7, |w| wire::encode_response_part(w, session, chunk, i + 1 == parts))?;
                (api.lua_rawseti)(l, -2, (i + 2) as lua_Integer);
            }
            return Ok(1);
        }
        // An error text is truncated to one frame, whatever its length.
        let data = &payload[..payload.len().min(MULTI_PART)];
        let kind = if ok { wire::resp_type::OK } else { wire::resp_type::ERROR };
        push_frame(api, l, data.len() + 7, |w| wire::encode_response_single(w, session, kind, data))?;
        Ok(1)
    }
}

/// `unpackresponse(string)`: returns nothing at all for a malformed body.
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn lunpackresponse_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY (whole body): `l` is valid; at most four values are pushed.
    unsafe {
        let Some(body) = api.to_bytes(l, 1) else {
            return Err(Raise::CheckString(1));
        };
        let Ok(response) = wire::decode_response(body) else {
            return Ok(0);
        };
        (api.lua_pushinteger)(l, response.session() as lua_Integer);
        match response {
            Response::Error { msg, .. } => {
                (api.lua_pushboolean)(l, 0);
                api.push_bytes(l, msg);
                Ok(3)
            }
            Response::Ok { payload: data, .. } | Response::MultiPart { data, last: true, .. } => {
                (api.lua_pushboolean)(l, 1);
                api.push_bytes(l, data);
                Ok(3)
            }
            Response::MultiBegin { total, .. } => {
                (api.lua_pushboolean)(l, 1);
                (api.lua_pushinteger)(l, total as lua_Integer);
                (api.lua_pushboolean)(l, 1);
                Ok(4)
            }
            Response::MultiPart { data, last: false, .. } => {
                (api.lua_pushboolean)(l, 1);
                api.push_bytes(l, data);
                (api.lua_pushboolean)(l, 1);
                Ok(4)
            }
        }
    }
}

/// `append(t, msg, sz)`: stores the bytes as a string at `t[#t+1]` and frees `msg`;
/// `append(t, nil, x)` stores `x` (how clusteragent records the total size).
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn lappend_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY (whole body): `l` is valid; a lightuserdata points to `sz` bytes from the host's
    // malloc, owned by us from here on (the caller's contract, as in stock).
    unsafe {
        if (api.lua_type)(l, 1) != LUA_TTABLE {
            // Stock raises here without freeing a lightuserdata argument (a leak); the
            // buffer was handed to us, so free it first.
            if (api.lua_type)(l, 2) == LUA_TLIGHTUSERDATA {
                free_message((api.lua_touserdata)(l, 2));
            }
            return Err(Raise::CheckTable(1));
        }
        let n = (api.lua_rawlen)(l, 1) as c_int as lua_Integer;
        if (api.lua_type)(l, 2) == LUA_TNIL {
            (api.lua_settop)(l, 3);
            (api.lua_seti)(l, 1, n + 1);
            return Ok(0);
        }
        // A full userdata is refused: stock would free() its block.
        if (api.lua_type)(l, 2) != LUA_TLIGHTUSERDATA {
            return Err(error("Need lightuserdata"));
        }
        let buffer = (api.lua_touserdata)(l, 2);
        if buffer.is_null() {
            return Err(error("Need lightuserdata"));
        }
        // Stock leaks the buffer when the size check raises; free it first.
        let Some(sz) = api.to_integer(l, 3) else {
            free_message(buffer);
            return Err(Raise::CheckInteger(3));
        };
        let sz = sz as c_int;
        if sz < 0 {
            free_message(buffer);
            return Err(error(format!("Invalid message size {sz}")));
        }
        (api.lua_pushlstring)(l, buffer.cast(), sz as usize);
        free_message(buffer);
        (api.lua_seti)(l, 1, n + 1);
        Ok(0)
    }
}

/// `concat(t)`: `t[1]` is the total size, `t[2..]` the strings. Returns a new malloc'ed
/// `msg, sz`, or nothing on any mismatch.
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn lconcat_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY (whole body): `l` is valid; every slot used is checked with lua_checkstack;
    // the strings stay on the stack (so their bytes stay valid) until they are copied.
    unsafe {
        if (api.lua_type)(l, 1) != LUA_TTABLE {
            return Ok(0);
        }
        if (api.lua_geti)(l, 1, 1) != LUA_TNUMBER {
            return Ok(0);
        }
        // lua_tointeger semantics (a fractional float is 0), stored in a C int.
        let sz = api.to_integer(l, -1).unwrap_or(0) as c_int;
        let base = (api.lua_gettop)(l) - 1;
        (api.lua_settop)(l, base);
        if sz < 0 {
            return Ok(0);
        }
        let sz = sz as usize;
        // First pass: leave the strings on the stack and add up their sizes, so nothing is
        // allocated while a metamethod could still raise.
        let mut total = 0usize;
        let mut idx: lua_Integer = 2;
        loop {
            if (api.lua_checkstack)(l, 1) == 0 {
                (api.lua_settop)(l, base);
                return Ok(0);
            }
            if (api.lua_geti)(l, 1, idx) != LUA_TSTRING {
                (api.lua_settop)(l, (api.lua_gettop)(l) - 1);
                break;
            }
            total += (api.lua_rawlen)(l, -1) as usize;
            if total > sz {
                (api.lua_settop)(l, base);
                return Ok(0);
            }
            idx += 1;
        }
        if total != sz {
            (api.lua_settop)(l, base);
            return Ok(0);
        }
        let buf = libc::malloc(sz.max(1)).cast::<u8>();
        if buf.is_null() {
            (api.lua_settop)(l, base);
            return Err(error("not enough memory"));
        }
        let mut offset = 0usize;
        for slot in base + 1..=(api.lua_gettop)(l) {
            let s = api.to_bytes(l, slot).unwrap_or_default();
            std::ptr::copy_nonoverlapping(s.as_ptr(), buf.add(offset), s.len());
            offset += s.len();
        }
        (api.lua_settop)(l, base);
        (api.lua_pushlightuserdata)(l, buf.cast());
        (api.lua_pushinteger)(l, sz as lua_Integer);
        Ok(2)
    }
}

/// `isname(x)`: `true` when `x` is a string starting with `@`, else nothing.
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
unsafe fn lisname_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY: `l` is valid; index 1 is acceptable (to_bytes converts a number in place,
    // as lua_tostring does in stock).
    unsafe {
        match api.to_bytes(l, 1) {
            Some([b'@', ..]) => {
                (api.lua_pushboolean)(l, 1);
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

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
