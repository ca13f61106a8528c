//! The inbound path: requests read from accepted links become skynet messages to their
//! targets (the engine's [`Service`]); the targets' answers come back through the
//! service's callback (`messages.rs`) and leave with the next flush (`batching.rs`).

use super::api::{PTYPE_LUA, PTYPE_TRACE};
use super::Core;
use crate::engine::{Address, Inbound, Responder, Service};
use std::collections::HashSet;
use std::ffi::CString;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// An inbound call in service: its answer goes through `responder`; `link` is the
/// accepted link it came on (dropped when that link closes, see "Link events").
pub(super) struct InCall {
    pub(super) link: u64,
    pub(super) responder: Responder,
}

impl Core {
    fn session(&self) -> i32 {
        loop {
            let s = self.next_session.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff;
            if s != 0 {
                return s as i32;
            }
        }
    }

    /// The skynet handle of a request's target; `None` when skynet knows no such service.
    fn resolve(&self, addr: Address<'_>) -> Option<u32> {
        match addr {
            Address::Id(0) => None,
            Address::Id(n) => Some(n),
            Address::Name(n) if matches!(n.first(), Some(b'.') | Some(b':')) => {
                let c = CString::new(n).ok()?;
                // SAFETY: NUL-terminated name; ctx is live inside with_ctx; skynet_queryname
                // only reads the handle table under its lock (or parses `:hex`).
                let h = self.with_ctx(|ctx| unsafe { (self.api.queryname)(ctx, c.as_ptr()) })?;
                (h != 0).then_some(h)
            }
            Address::Name(_) => None,
        }
    }

    /// Drops the inbound calls whose link has closed (their targets have not answered):
    /// once per round of events that closed links. The responders go with no answer to
    /// send (their links are gone).
    pub(super) fn purge_closed(&self) {
        let closed: HashSet<u64> = {
            let mut c = self.closed_links.lock();
            if c.is_empty() {
                return;
            }
            c.drain(..).collect()
        };
        let dropped: Vec<InCall> = {
            let mut m = self.inflight.lock();
            let gone: Vec<i32> = m.iter().filter(|(_, c)| closed.contains(&c.link)).map(|(&s, _)| s).collect();
            gone.iter().filter_map(|s| m.remove(s)).collect()
        };
        self.abandoned.fetch_add(dropped.len() as u64, Ordering::Relaxed);
    }
}

/// The engine's view of this service: inbound requests become skynet messages.
pub(super) struct Inbox(pub(super) Arc<Core>);

impl Service for Inbox {
    fn call(&self, req: Inbound<'_>, responder: Responder) {
        let core = &self.0;
        core.served_calls.fetch_add(1, Ordering::Relaxed);
        let Some(target) = core.resolve(req.addr) else {
            let t = core.texts.read().invalid_address.clone();
            return responder.error(&t);
        };
        let s = core.session();
        core.inflight.lock().insert(s, InCall { link: req.link, responder });
        if let Some(tag) = req.trace {
            core.send(target, PTYPE_TRACE, 0, tag);
        }
        if core.send(target, PTYPE_LUA, s, req.payload) < 0 {
            if let Some(c) = core.inflight.lock().remove(&s) {
                let t = core.texts.read().invalid_address.clone();
                c.responder.error(&t);
            }
        }
        core.wake();
    }

    fn push(&self, req: Inbound<'_>) {
        let core = &self.0;
        core.served_pushes.fetch_add(1, Ordering::Relaxed);
        match core.resolve(req.addr) {
            Some(target) => {
                if core.send(target, PTYPE_LUA, 0, req.payload) < 0 {
                    core.log(&format!("cluster push to :{target:08x} dropped: no such service"));
                }
                core.wake();
            }
            None => core.log(&format!("cluster push to {} dropped: invalid address", show_addr(req.addr))),
        }
    }

    fn after_events(&self) {
        self.0.after_events();
    }

    fn stalled(&self, _running: Duration) {
        // Core keeps its own clock (the pause and the 5 s monitor checks).
        self.0.stalled();
    }
}

fn show_addr(a: Address<'_>) -> String {
    match a {
        Address::Id(n) => format!(":{n:08x}"),
        Address::Name(n) => String::from_utf8_lossy(n).into_owned(),
    }
}
