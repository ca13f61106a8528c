//! The slice of the Lua C API this module uses, resolved from the host process at load time.
//!
//! Why not link Lua (or a binding crate such as `mlua-sys`, which declares the API as
//! link-time externs): the same `libskynet_cluster.so` must
//! * load into skynet (Lua 5.5 at skynet master, 5.4 in skynet <= 1.8) and into `lua5.4`,
//!   taking the API from whichever Lua the host carries, never a copy of its own, and
//! * load into a plain C program with no Lua at all (the C API lives in the same library),
//!   which rules out undefined `lua_*` symbols: with full RELRO (`-z now`, Rust's default)
//!   or `RTLD_NOW` such a library would not even load.
//!
//! So `luaopen_skynet_cluster_core` looks each function up with `dlsym(RTLD_DEFAULT, ..)`
//! once and keeps the pointers in [`LuaApi`]. Every function listed here has the same
//! signature and meaning in Lua 5.4 and 5.5, and none of them depends on a struct layout,
//! which is what lets one build serve both (see `tests/lua/` for the replay in both hosts).
//! The API is declared by hand because it is 27 functions and no binding crate offers
//! run-time resolution.
//!
//! The functions that can raise a Lua error (`lua_error`, the `luaL_check*` family and any
//! that may run a metamethod or allocate) are typed `extern "C-unwind"`: Lua raises with
//! `longjmp` (or a C++ exception in a C++ build), and the module guarantees that no Rust
//! frame that owns a value with a destructor is live when that happens (see `module.rs`).

#![allow(non_camel_case_types, non_snake_case)]

use std::ffi::{c_char, c_int, c_void, CStr};

/// Opaque Lua state.
#[repr(C)]
pub struct lua_State {
    _private: [u8; 0],
}

pub type lua_Integer = i64;
pub type lua_Unsigned = u64;
pub type lua_Number = f64;
pub type lua_CFunction = unsafe extern "C-unwind" fn(*mut lua_State) -> c_int;

pub const LUA_TNIL: c_int = 0;
pub const LUA_TLIGHTUSERDATA: c_int = 2;
pub const LUA_TNUMBER: c_int = 3;
pub const LUA_TSTRING: c_int = 4;
pub const LUA_TTABLE: c_int = 5;

macro_rules! lua_api {
    ($( $field:ident : fn($($arg:ty),*) $(-> $ret:ty)? ; )*) => {
        /// Pointers to the host's Lua API functions. Built once by [`LuaApi::resolve`].
        pub struct LuaApi {
            $( pub $field: unsafe extern "C-unwind" fn($($arg),*) $(-> $ret)?, )*
        }

        impl LuaApi {
            /// Looks every function up in the host process. Returns the name of the first
            /// missing symbol on failure (the host does not export its Lua API).
            pub fn resolve() -> Result<LuaApi, &'static str> {
                Ok(LuaApi {
                    $( $field: {
                        let name = concat!(stringify!($field), "\0");
                        // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the global
                        // symbol scope of the process and has no other precondition.
                        let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr().cast()) };
                        if sym.is_null() {
                            return Err(stringify!($field));
                        }
                        // SAFETY: the symbol is the host's Lua API function of that name, whose
                        // C signature (identical in Lua 5.4 and 5.5) is the one declared here.
                        unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C-unwind" fn($($arg),*) $(-> $ret)?>(sym) }
                    }, )*
                })
            }
        }
    };
}

lua_api! {
    lua_version: fn(*mut lua_State) -> lua_Number;
    lua_gettop: fn(*mut lua_State) -> c_int;
    lua_settop: fn(*mut lua_State, c_int);
    lua_checkstack: fn(*mut lua_State, c_int) -> c_int;
    lua_type: fn(*mut lua_State, c_int) -> c_int;
    lua_typename: fn(*mut lua_State, c_int) -> *const c_char;
    lua_touserdata: fn(*mut lua_State, c_int) -> *mut c_void;
    lua_tointegerx: fn(*mut lua_State, c_int, *mut c_int) -> lua_Integer;
    lua_tolstring: fn(*mut lua_State, c_int, *mut usize) -> *const c_char;
    lua_toboolean: fn(*mut lua_State, c_int) -> c_int;
    lua_rawlen: fn(*mut lua_State, c_int) -> lua_Unsigned;
    lua_pushnil: fn(*mut lua_State);
    lua_pushinteger: fn(*mut lua_State, lua_Integer);
    lua_pushboolean: fn(*mut lua_State, c_int);
    lua_pushlstring: fn(*mut lua_State, *const c_char, usize) -> *const c_char;
    lua_pushlightuserdata: fn(*mut lua_State, *mut c_void);
    lua_pushcclosure: fn(*mut lua_State, lua_CFunction, c_int);
    lua_createtable: fn(*mut lua_State, c_int, c_int);
    lua_rawseti: fn(*mut lua_State, c_int, lua_Integer);
    lua_seti: fn(*mut lua_State, c_int, lua_Integer);
    lua_geti: fn(*mut lua_State, c_int, lua_Integer) -> c_int;
    lua_setfield: fn(*mut lua_State, c_int, *const c_char);
    lua_concat: fn(*mut lua_State, c_int);
    lua_error: fn(*mut lua_State) -> c_int;
    luaL_where: fn(*mut lua_State, c_int);
    luaL_checkinteger: fn(*mut lua_State, c_int) -> lua_Integer;
    luaL_checklstring: fn(*mut lua_State, c_int, *mut usize) -> *const c_char;
    luaL_checktype: fn(*mut lua_State, c_int, c_int);
}

impl LuaApi {
    /// `lua_tointegerx` as an `Option`.
    ///
    /// # SAFETY
    /// `l` is a valid state and `idx` an acceptable index.
    #[inline]
    pub unsafe fn to_integer(&self, l: *mut lua_State, idx: c_int) -> Option<lua_Integer> {
        let mut isnum: c_int = 0;
        // SAFETY: per this function's contract; `isnum` outlives the call.
        let v = unsafe { (self.lua_tointegerx)(l, idx, &mut isnum) };
        (isnum != 0).then_some(v)
    }

    /// `lua_tolstring` as a byte slice. Converts a number at `idx` to a string in place,
    /// like the C function.
    ///
    /// # SAFETY
    /// `l` is valid, `idx` acceptable; the slice is valid while the value stays on the stack.
    #[inline]
    pub unsafe fn to_bytes<'a>(&self, l: *mut lua_State, idx: c_int) -> Option<&'a [u8]> {
        let mut len = 0usize;
        // SAFETY: per this function's contract.
        let p = unsafe { (self.lua_tolstring)(l, idx, &mut len) };
        if p.is_null() {
            None
        } else {
            // SAFETY: Lua guarantees `len` readable bytes at `p` while the string is on the stack.
            Some(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
        }
    }

    /// Pushes a copy of `bytes` as a Lua string.
    ///
    /// # SAFETY
    /// `l` is valid with room for one more slot. May raise (out of memory).
    #[inline]
    pub unsafe fn push_bytes(&self, l: *mut lua_State, bytes: &[u8]) {
        // SAFETY: per this function's contract; Lua copies the bytes before returning.
        unsafe { (self.lua_pushlstring)(l, bytes.as_ptr().cast(), bytes.len()) };
    }

    /// The host's name for the type of the value at `idx` (`"nil"`, `"no value"`, ...).
    ///
    /// # SAFETY
    /// `l` is valid, `idx` acceptable.
    pub unsafe fn type_name(&self, l: *mut lua_State, idx: c_int) -> &'static [u8] {
        // SAFETY: per this function's contract; lua_typename returns a static C string.
        unsafe { CStr::from_ptr((self.lua_typename)(l, (self.lua_type)(l, idx))).to_bytes() }
    }
}
