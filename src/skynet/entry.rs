//! The `extern "C"` entry points skynet calls: `skcluster_create`, `skcluster_init`,
//! `skcluster_release`, `skcluster_signal` and the service's message callback. Each only
//! converts its arguments, catches panics and calls the [`Inst`] method that does the work
//! (`lifecycle.rs`, `messages.rs`).

use super::{catch, Inst};
use std::ffi::{c_char, c_int, c_void};

/// `skcluster_create`: a new, uninitialised instance.
#[no_mangle]
pub extern "C" fn skcluster_create() -> *mut c_void {
    catch(std::ptr::null_mut(), || Box::into_raw(Box::new(Inst::new())).cast())
}

/// `skcluster_init`: resolves skynet's API, starts the engine, installs the callback.
/// `parm` is unused (configuration comes as messages). Returns 0 on success.
///
/// # Safety
/// `inst` comes from `skcluster_create`; `ctx` is the service's live skynet context.
#[no_mangle]
pub unsafe extern "C" fn skcluster_init(inst: *mut c_void, ctx: *mut c_void, parm: *const c_char) -> c_int {
    let _ = parm;
    catch(1, || {
        if inst.is_null() || ctx.is_null() {
            return 1;
        }
        // SAFETY: caller contract: a live instance from skcluster_create, used by one
        // thread at a time during init.
        let inst = unsafe { &mut *(inst as *mut Inst) };
        match inst.init(ctx) {
            Ok(()) => 0,
            Err(()) => 1,
        }
    })
}

/// `skcluster_release`: stops the engine (pending outbound calls fail and their callers
/// get `PTYPE_ERROR`), then frees the instance.
///
/// # Safety
/// `inst` comes from `skcluster_create` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn skcluster_release(inst: *mut c_void) {
    if inst.is_null() {
        return;
    }
    catch((), || {
        // First make sure the I/O thread no longer reads the instance (it only ever takes
        // shared references), then take it back.
        // SAFETY: caller contract: a live instance from skcluster_create; read shared.
        unsafe { &*(inst as *const Inst) }.stop_readers();
        // SAFETY: caller contract: the pointer came from Box::into_raw in skcluster_create;
        // after stop_readers no other thread reads it.
        let mut inst = unsafe { Box::from_raw(inst as *mut Inst) };
        inst.release();
        drop(inst);
    })
}

/// `skcluster_signal`: nothing to do.
#[no_mangle]
pub extern "C" fn skcluster_signal(_inst: *mut c_void, _sig: c_int) {}

/// The skynet callback. Returns 1 when the message was kept (skynet then leaves `msg`
/// to us), else 0 (skynet frees `msg` afterwards).
pub(super) unsafe extern "C" fn on_message(
    _ctx: *mut c_void,
    ud: *mut c_void,
    ty: c_int,
    session: c_int,
    source: u32,
    msg: *const c_void,
    sz: usize,
) -> c_int {
    catch(0, || {
        // SAFETY: ud is the Inst registered in init; skynet calls back one message at a
        // time and never after release.
        let inst = unsafe { &*(ud as *const Inst) };
        let data: &[u8] = if msg.is_null() || sz == 0 {
            &[]
        } else {
            // SAFETY: skynet hands a message of `sz` readable bytes, valid during the callback.
            unsafe { std::slice::from_raw_parts(msg as *const u8, sz) }
        };
        inst.on_message(ty, session, source, msg, data)
    })
}
