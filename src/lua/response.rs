//! `packresponse`, `unpackresponse`, `append`, `concat`, `isname`: responses and the joining
//! of multi-part messages, as stock's clusteragent/clustersender use them.

use super::api::*;
use super::boundary::{error, LuaResult, Raise};
use super::frames::*;
use crate::wire::{self, Response, MULTI_PART};
use std::ffi::c_int;

/// `packresponse(session, ok, msg, sz)` or `packresponse(session, ok, string)`.
/// Never frees `msg`: it came from `skynet.rawcall` and stays the caller's.
/// SAFETY: called only through [`run`], with the state Lua passed to the C function.
pub(super) unsafe fn lpackresponse_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
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
pub(super) unsafe fn lunpackresponse_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
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
pub(super) unsafe fn lappend_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
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
pub(super) unsafe fn lconcat_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
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
pub(super) unsafe fn lisname_inner(api: &LuaApi, l: *mut lua_State) -> LuaResult {
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
