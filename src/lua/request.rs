//! `packrequest`, `packpush`, `packtrace`, `unpackrequest`: requests to and from Lua, over
//! `wire`'s encoders and decoder.

use super::api::*;
use super::boundary::{error, LuaResult, Raise};
use super::frames::*;
use crate::wire::{self, Address, DecodeError, Request, RequestKind, MULTI_PART};
use std::ffi::c_int;

/// `packrequest(addr, session, msg, sz)` / `packpush(...)`.
///
/// # SAFETY
/// Called by Lua through [`run`]. `msg` must point to `sz` readable bytes from the host's
/// `malloc` (the same contract as stock: it comes from `skynet.pack`).
pub(super) unsafe fn packrequest(api: &LuaApi, l: *mut lua_State, kind: RequestKind) -> LuaResult {
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
pub(super) unsafe fn pack_request_frames(
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
pub(super) unsafe fn lpackrequest_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY: forwarded contract.
    unsafe { packrequest(api, l, RequestKind::Call) }
}

/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
pub(super) unsafe fn lpackpush_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
    // SAFETY: forwarded contract.
    unsafe { packrequest(api, l, RequestKind::Push) }
}

/// `packtrace(tag)`: the 0x04 frame.
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
pub(super) unsafe fn lpacktrace_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
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
pub(super) unsafe fn lunpackrequest_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
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
pub(super) unsafe fn push_address(api: &LuaApi, l: *mut lua_State, addr: Address<'_>) {
    // SAFETY: per this function's contract.
    unsafe {
        match addr {
            Address::Id(id) => (api.lua_pushinteger)(l, id as lua_Integer),
            Address::Name(name) => api.push_bytes(l, name),
        }
    }
}
