//! Frames handed to Lua: built in stack scratch (one copy into a Lua string), or in a buffer
//! from the host's `malloc` that the caller owns; messages the module takes are freed with
//! the host's `free`.

use super::api::*;
use super::boundary::{error, Raise};
use std::ffi::c_void;
use std::mem::MaybeUninit;

/// Stack scratch for one frame: the largest frame built in one piece is a single request
/// with a 255-byte name and a 32767-byte payload (2 + 6 + 255 + 32767 bytes).
pub(super) const TEMP_LENGTH: usize = 0x8200;

/// Frames up to this size are built in a small stack buffer, so the common tiny calls do
/// not pay for touching (stack-probing) the 33 KiB scratch.
pub(super) const SMALL_FRAME: usize = 512;

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
pub(super) unsafe fn push_frame(
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
pub(super) unsafe fn push_large_frame(
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
pub(super) unsafe fn fill_and_push<const N: usize>(
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
pub(super) unsafe fn push_new_buffer(api: &LuaApi, l: *mut lua_State, bytes: &[u8]) -> Result<(), Raise> {
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
pub(super) unsafe fn free_message(ptr: *mut c_void) {
    // SAFETY: per this function's contract.
    unsafe { libc::free(ptr) }
}

/// `%s` stops at the first NUL: stock formats names with it, so the texts do too.
pub(super) fn c_str_prefix(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}
