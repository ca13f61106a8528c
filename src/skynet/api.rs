//! The slice of skynet's C API the service uses, resolved from the host process at
//! `skcluster_create` time (skynet links its executable with `-Wl,-E`, so every
//! `skynet_*` function is in the global symbol scope).
//!
//! As with the Lua API in `src/lua/api.rs`, nothing here is a link-time extern: the
//! library has no undefined `skynet_*` symbols, so it still loads into a plain C program,
//! into `lua5.4`, and into the test double (`tests/skynet/skynet_double.c`), which defines these
//! same functions in its own executable.
//!
//! Signatures are those of `skynet-src/skynet.h` and `skynet-src/skynet_socket.h` (stable
//! across skynet 1.x and master). `skynet_malloc`/`skynet_free` are `malloc`/`free` when
//! skynet is built without jemalloc and `je_malloc`/`je_free` with it; the service never
//! hands skynet a buffer it allocated itself (`skynet_send` without `PTYPE_TAG_DONTCOPY`
//! copies), and the only skynet buffer it frees is a socket message's data buffer, with
//! `skynet_free` when the host exports it, else `free`.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

pub type skynet_cb = unsafe extern "C" fn(
    ctx: *mut c_void,
    ud: *mut c_void,
    ty: c_int,
    session: c_int,
    source: u32,
    msg: *const c_void,
    sz: usize,
) -> c_int;

pub const PTYPE_TEXT: c_int = 0;
pub const PTYPE_RESPONSE: c_int = 1;
pub const PTYPE_SOCKET: c_int = 6;
pub const PTYPE_ERROR: c_int = 7;
pub const PTYPE_LUA: c_int = 10;
pub const PTYPE_TRACE: c_int = 12;

/// `struct skynet_socket_message` (skynet_socket.h).
#[repr(C)]
pub struct SocketMessage {
    pub ty: c_int,
    pub id: c_int,
    pub ud: c_int,
    pub buffer: *mut c_char,
}
pub const SKYNET_SOCKET_TYPE_DATA: c_int = 1;

/// Pointers to the host's skynet functions.
pub struct Api {
    pub send: unsafe extern "C" fn(*mut c_void, u32, u32, c_int, c_int, *mut c_void, usize) -> c_int,
    pub callback: unsafe extern "C" fn(*mut c_void, *mut c_void, skynet_cb),
    pub error: unsafe extern "C" fn(*mut c_void, *const c_char, ...),
    pub queryname: unsafe extern "C" fn(*mut c_void, *const c_char) -> u32,
    /// Used once, `"REG"` with no name: the service's own handle as `:hex`.
    pub command: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *const c_char,
    /// Optional: the worker wake-up channel (see `mod.rs`, "Waking skynet's workers").
    pub socket_bind: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub socket_close: Option<unsafe extern "C" fn(*mut c_void, c_int)>,
    pub free: unsafe extern "C" fn(*mut c_void),
    /// Optional `skynet_getenv` (skynet_env.h): a key of the skynet config file. Without it
    /// the service asks `skynet_command(ctx, "GETENV", key)`, which answers the same.
    pub getenv: Option<unsafe extern "C" fn(*const c_char) -> *const c_char>,
    /// Optional, all four or none: lets the engine's I/O thread run the skynet messages it
    /// has just delivered (see `mod.rs`, "Running delivered messages at once").
    pub dispatch: Option<Dispatch>,
}

/// `skynet_context_message_dispatch`, `skynet_globalmq_push`, `skynet_monitor_new/_delete`
/// (skynet_server.h, skynet_mq.h, skynet_monitor.h).
#[derive(Clone, Copy)]
pub struct Dispatch {
    pub dispatch: unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> *mut c_void,
    pub globalmq_push: unsafe extern "C" fn(*mut c_void),
    pub monitor_new: unsafe extern "C" fn() -> *mut c_void,
    pub monitor_delete: unsafe extern "C" fn(*mut c_void),
    /// Optional `skynet_monitor_check`: what skynet's monitor thread runs on each worker's
    /// monitor every 5 s (logs "maybe in an endless loop" for a message still running
    /// since the previous check). Used on our monitor while a message runs long.
    pub monitor_check: Option<unsafe extern "C" fn(*mut c_void)>,
    /// Optional: the service's own queue read directly (see `mod.rs`, "Its own queue").
    pub own_queue: Option<OwnQueue>,
}

/// `skynet_mq_handle`, `skynet_mq_pop`, `skynet_globalmq_pop` (skynet_mq.h).
#[derive(Clone, Copy)]
pub struct OwnQueue {
    pub handle: unsafe extern "C" fn(*mut c_void) -> u32,
    pub pop: unsafe extern "C" fn(*mut c_void, *mut SkynetMessage) -> c_int,
    pub globalmq_pop: unsafe extern "C" fn() -> *mut c_void,
}

/// `struct skynet_message` (skynet_mq.h): the type is in the top byte of `sz`.
#[repr(C)]
pub struct SkynetMessage {
    pub source: u32,
    pub session: c_int,
    pub data: *mut c_void,
    pub sz: usize,
}

impl SkynetMessage {
    const TYPE_SHIFT: u32 = (std::mem::size_of::<usize>() as u32 - 1) * 8;

    pub fn empty() -> Self {
        SkynetMessage { source: 0, session: 0, data: std::ptr::null_mut(), sz: 0 }
    }

    /// `(type, size)` as `dispatch_message` splits them.
    pub fn type_and_size(&self) -> (c_int, usize) {
        ((self.sz >> Self::TYPE_SHIFT) as c_int, self.sz & (usize::MAX >> 8))
    }
}

fn sym(name: &'static str) -> *mut c_void {
    debug_assert!(name.ends_with('\0'));
    // SAFETY: `name` is NUL-terminated; RTLD_DEFAULT searches the process's global scope.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr().cast()) }
}

macro_rules! need {
    ($name:literal, $ty:ty) => {{
        let p = sym(concat!($name, "\0"));
        if p.is_null() {
            return Err($name);
        }
        // SAFETY: the symbol is skynet's function of that name, whose C signature
        // (skynet.h) is the one declared in `Api`.
        unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
    }};
}

macro_rules! opt {
    ($name:literal, $ty:ty) => {{
        let p = sym(concat!($name, "\0"));
        if p.is_null() {
            None
        } else {
            // SAFETY: as in `need!`: skynet's function with the signature declared in `Api`.
            Some(unsafe { std::mem::transmute::<*mut c_void, $ty>(p) })
        }
    }};
}

/// The host's `skynet_free`, or `free` when it exports none (skynet without jemalloc).
pub fn skynet_free() -> unsafe extern "C" fn(*mut c_void) {
    match opt!("skynet_free", unsafe extern "C" fn(*mut c_void)) {
        Some(f) => f,
        None => libc::free as unsafe extern "C" fn(*mut c_void),
    }
}

impl Api {
    /// Looks every function up; the name of the first missing one on failure.
    pub fn resolve() -> Result<Api, &'static str> {
        let free = skynet_free();
        Ok(Api {
            send: need!(
                "skynet_send",
                unsafe extern "C" fn(*mut c_void, u32, u32, c_int, c_int, *mut c_void, usize) -> c_int
            ),
            callback: need!("skynet_callback", unsafe extern "C" fn(*mut c_void, *mut c_void, skynet_cb)),
            error: need!("skynet_error", unsafe extern "C" fn(*mut c_void, *const c_char, ...)),
            queryname: need!("skynet_queryname", unsafe extern "C" fn(*mut c_void, *const c_char) -> u32),
            command: need!(
                "skynet_command",
                unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *const c_char
            ),
            socket_bind: opt!("skynet_socket_bind", unsafe extern "C" fn(*mut c_void, c_int) -> c_int),
            socket_close: opt!("skynet_socket_close", unsafe extern "C" fn(*mut c_void, c_int)),
            free,
            getenv: opt!("skynet_getenv", unsafe extern "C" fn(*const c_char) -> *const c_char),
            dispatch: (|| {
                Some(Dispatch {
                    dispatch: opt!(
                        "skynet_context_message_dispatch",
                        unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> *mut c_void
                    )?,
                    globalmq_push: opt!("skynet_globalmq_push", unsafe extern "C" fn(*mut c_void))?,
                    monitor_new: opt!("skynet_monitor_new", unsafe extern "C" fn() -> *mut c_void)?,
                    monitor_delete: opt!("skynet_monitor_delete", unsafe extern "C" fn(*mut c_void))?,
                    monitor_check: opt!("skynet_monitor_check", unsafe extern "C" fn(*mut c_void)),
                    own_queue: (|| {
                        Some(OwnQueue {
                            handle: opt!("skynet_mq_handle", unsafe extern "C" fn(*mut c_void) -> u32)?,
                            pop: opt!("skynet_mq_pop", unsafe extern "C" fn(*mut c_void, *mut SkynetMessage) -> c_int)?,
                            globalmq_pop: opt!("skynet_globalmq_pop", unsafe extern "C" fn() -> *mut c_void)?,
                        })
                    })(),
                })
            })(),
        })
    }
}
