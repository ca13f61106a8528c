//! Starting and stopping the service: what `skcluster_init` and `skcluster_release` do
//! (the skynet API, the wake-up channel, the configuration, the engine and its hooks).

use super::api::{Api, PTYPE_ERROR};
use super::context::Ctx;
use super::entry::on_message;
use super::gate::{Gate, CTX_DEPTH, INST_DEPTH};
use super::inbound::{InCall, Inbox};
use super::inline::{inline_dispatch, STANDBY_AFTER};
use super::link_events::LinkWatch;
use super::{direct, settings, Core, Inst, State, Texts};
use crate::engine::{Config, LinkEvent, LinkHook, LogHook, LogRecord, Node};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::ffi::{c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

impl Inst {
    pub(super) fn new() -> Inst {
        Inst { core: None, pending: Mutex::default(), node: None, wake_id: -1, wake_fd: -1 }
    }

    /// `skcluster_init`'s work: resolves skynet's API, starts the engine, installs the
    /// callback. `Err`: the service does not start (the reason is logged).
    pub(super) fn init(&mut self, ctx: *mut c_void) -> Result<(), ()> {
        let api = match Api::resolve() {
            Ok(a) => a,
            Err(missing) => {
                eprintln!(
                    "skcluster: the host does not export {missing} (is this a skynet process built with -Wl,-E?)"
                );
                return Err(());
            }
        };
        let (wake_fd, wake_id) = wake_channel(&api, ctx);
        let core = Arc::new(Core::new(api, ctx, wake_fd));
        // The service does not start: the wake-up channel goes (e.g. TLS files that cannot
        // be read must not cost a descriptor per attempt).
        let give_up = || {
            close_wake_channel(&core.api, ctx, wake_fd, wake_id);
            Err(())
        };
        let Ok(node) = start_engine(&core, ctx) else {
            return give_up();
        };
        let Some(me) = own_handle(&core.api, ctx) else {
            core.log("skcluster: cannot learn the service's own handle");
            drop(node);
            return give_up();
        };
        core.self_handle.store(me, Ordering::Relaxed);
        node.set_service(Arc::new(Inbox(core.clone())));
        // Weak: the engine holds the hook, and the core holds the engine's handle.
        let weak = Arc::downgrade(&core);
        let hook: LinkHook = Arc::new(move |ev: &LinkEvent| {
            if let Some(core) = weak.upgrade() {
                core.on_link_event(ev);
            }
        });
        node.handle().set_link_hook(Some(hook));
        // The engine's log lines go to skynet's logger, as every other line of the node.
        let weak = Arc::downgrade(&core);
        node.handle().set_log(Some(LogHook::new(move |r: &LogRecord<'_>| {
            if let Some(core) = weak.upgrade() {
                core.log(&format!("skcluster: {}", r.text));
            }
        })));
        *core.handle.write() = Some(node.handle());
        self.node = Some(node);
        self.wake_fd = wake_fd;
        self.wake_id = wake_id;
        // SAFETY: ctx is live; `self` outlives the callback registration (skynet stops
        // calling it before skcluster_release); `on_message` matches skynet_cb.
        unsafe { (core.api.callback)(ctx, (self as *mut Inst).cast(), on_message) };
        direct::set_current(core.clone());
        self.core = Some(core.clone());
        // Read by the I/O thread only for queues skynet hands out, i.e. after init returned.
        core.inst.store(self as *mut Inst, Ordering::SeqCst);
        Ok(())
    }

    /// First step of `skcluster_release`: once this returns, the I/O thread no longer
    /// reads the instance (it only ever takes shared references through `inst_gate`).
    pub(super) fn stop_readers(&self) {
        if let Some(core) = self.core.clone() {
            core.inst_gate.close();
        }
    }

    /// The rest of `skcluster_release` (after [`Inst::stop_readers`]): stops the engine
    /// (pending outbound calls fail and their callers get `PTYPE_ERROR`), frees what was
    /// kept, closes the context's gate. The caller frees the instance afterwards.
    pub(super) fn release(&mut self) {
        let kept = std::mem::take(&mut self.pending.lock().items);
        drop(kept); // unanswered inbound calls get "no response"; kept messages are freed
        if let Some(core) = self.core.as_ref() {
            // No new calls from callers' workers; breaks the core -> engine -> core cycle.
            direct::clear_current(core);
            if let Some(h) = core.handle.write().take() {
                h.set_link_hook(None);
                h.set_log(None);
            }
        }
        drop(self.node.take()); // joins the I/O thread (unless this is the I/O thread)
        if let Some(core) = self.core.take() {
            if self.wake_id >= 0 {
                if let Some(close) = core.api.socket_close {
                    // SAFETY: ctx is still live during release; the id is our bound socket.
                    unsafe { close(core.ctx.0, self.wake_id) };
                }
            }
            // Link-event polls still waiting end with an error (the Lua loop stops).
            let polls: Vec<(u32, c_int)> =
                core.links.lock().subs.drain().filter_map(|(h, sub)| sub.waiting.map(|s| (h, s))).collect();
            for (h, session) in polls {
                core.send(h, PTYPE_ERROR, session, &[]);
            }
            // From here on the context is gone: callers' workers still in the direct path
            // and an I/O thread still running (we were released from its inline dispatch)
            // stop using it.
            core.ctx_gate.close();
            let pending: Vec<InCall> = core.inflight.lock().drain().map(|(_, c)| c).collect();
            drop(pending);
        }
        if self.wake_fd >= 0 {
            // SAFETY: our end of the socketpair, closed once.
            unsafe { libc::close(self.wake_fd) };
        }
    }
}

impl Core {
    fn new(api: Api, ctx: *mut c_void, wake_fd: c_int) -> Core {
        Core {
            inline: inline_dispatch(&api, ctx),
            api,
            ctx: Ctx(ctx),
            inflight: Mutex::new(HashMap::new()),
            closed_links: Mutex::new(Vec::new()),
            abandoned: AtomicU64::new(0),
            links: Mutex::new(LinkWatch::default()),
            next_session: AtomicU32::new(1),
            texts: RwLock::new(Texts {
                call_failed: b"call failed".to_vec(),
                invalid_address: b"call to invalid address".to_vec(),
                open_answers_address: false,
            }),
            wake_fd,
            wake_pending: AtomicBool::new(false),
            delivered: AtomicBool::new(false),
            ctx_gate: Gate::new(&CTX_DEPTH),
            served_calls: AtomicU32::new(0),
            served_pushes: AtomicU32::new(0),
            made_calls: AtomicU64::new(0),
            made_pushes: AtomicU64::new(0),
            handle: RwLock::new(None),
            st: Mutex::new(State::default()),
            self_handle: AtomicU32::new(0),
            inst: AtomicPtr::new(std::ptr::null_mut()),
            inst_gate: Gate::new(&INST_DEPTH),
            direct: Mutex::default(),
        }
    }
}

/// The wake-up channel (see "Waking skynet's workers"): `(our end, skynet's socket id)`,
/// or `(-1, -1)` when the host cannot bind a socket.
fn wake_channel(api: &Api, ctx: *mut c_void) -> (c_int, c_int) {
    let Some(bind) = api.socket_bind else {
        return (-1, -1);
    };
    let mut fds = [-1 as c_int; 2];
    // SAFETY: fds is a valid array of two ints for socketpair to fill.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return (-1, -1);
    }
    // SAFETY: ctx is live; skynet takes ownership of fds[0] (closes it with the socket).
    let id = unsafe { bind(ctx, fds[0]) };
    if id >= 0 {
        return (fds[1], id);
    }
    // SAFETY: both fds are ours and open.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    (-1, -1)
}

/// Closes what [`wake_channel`] opened (both ends), for a service that does not start.
fn close_wake_channel(api: &Api, ctx: *mut c_void, wake_fd: c_int, wake_id: c_int) {
    if wake_id >= 0 {
        if let Some(close) = api.socket_close {
            // SAFETY: ctx is live (init has not returned); the id is the socket we bound.
            unsafe { close(ctx, wake_id) };
        }
    }
    if wake_fd >= 0 {
        // SAFETY: our end of the socketpair, not handed to anyone, closed once.
        unsafe { libc::close(wake_fd) };
    }
}

/// The engine, configured from the skynet config (see "Configuration"; the engine's
/// defaults otherwise). With inline dispatch, user messages run on the I/O thread: a
/// standby thread keeps the links served while one of them runs long.
fn start_engine(core: &Core, ctx: *mut c_void) -> Result<Node, ()> {
    let standby_after = core.inline.as_ref().map(|_| STANDBY_AFTER);
    let settings =
        match settings::read(Config { standby_after, ..Config::default() }, |k| config_value(&core.api, ctx, k)) {
            Ok(s) => s,
            Err(errors) => {
                for e in &errors {
                    core.log(e);
                }
                core.log("skcluster: not started: fix the cluster_* keys above in the skynet config");
                return Err(());
            }
        };
    if let Some(g) = &settings.given {
        core.log(g);
    }
    for w in &settings.warnings {
        core.log(w);
    }
    Node::new(settings.cfg).map_err(|e| core.log(&format!("skcluster: cannot start the engine: {e}")))
}

/// The service's own handle: `skynet_command(ctx, "REG", NULL)` answers `:hex`.
fn own_handle(api: &Api, ctx: *mut c_void) -> Option<u32> {
    // SAFETY: ctx is live; "REG" with a NULL name returns our handle as ":%08x" in a
    // buffer owned by the context (copied out at once).
    let reg = unsafe { (api.command)(ctx, c"REG".as_ptr(), std::ptr::null()) };
    if reg.is_null() {
        return None;
    }
    // SAFETY: skynet_command returns a NUL-terminated string.
    let text = unsafe { CStr::from_ptr(reg) }.to_string_lossy();
    text.strip_prefix(':').and_then(|h| u32::from_str_radix(h, 16).ok()).filter(|&me| me != 0)
}

/// A key of the skynet config file: `skynet_getenv`, else `skynet_command(ctx, "GETENV")`.
pub(super) fn config_value(api: &Api, ctx: *mut c_void, key: &str) -> Option<String> {
    let key = CString::new(key).ok()?;
    let v = match api.getenv {
        // SAFETY: NUL-terminated key; skynet_getenv returns NULL or a NUL-terminated string
        // owned by skynet's environment (copied at once below).
        Some(getenv) => unsafe { getenv(key.as_ptr()) },
        // SAFETY: ctx is live; GETENV answers as skynet_getenv does.
        None => unsafe { (api.command)(ctx, c"GETENV".as_ptr(), key.as_ptr()) },
    };
    if v.is_null() {
        return None;
    }
    // SAFETY: see above: a NUL-terminated string, valid while we copy it.
    Some(unsafe { std::ffi::CStr::from_ptr(v) }.to_string_lossy().into_owned())
}
