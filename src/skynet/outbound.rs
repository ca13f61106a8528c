//! The outbound path: calls and pushes from Lua callers handed to the engine, from the
//! service's callback or straight from a caller's worker (`direct.rs`), and the answers
//! delivered back to the caller.

use super::api::{PTYPE_ERROR, PTYPE_RESPONSE, PTYPE_TEXT};
use super::batching::BURST;
use super::{Core, ON_IO_THREAD};
use crate::engine::{Address, CallError, CallOpts, Reply};
use std::ffi::c_int;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Requests from callers' workers written later, in one go: see [`Core::submit_direct`].
#[derive(Default)]
pub(super) struct DirectBatch {
    /// Links with requests queued and not written yet.
    pending: crate::engine::Deferred,
    /// A flush token is on its way to the service.
    scheduled: bool,
    /// When the last direct request came.
    last: Option<Instant>,
}

impl Core {
    /// Sends a call (`session != 0`) or push. A node with no address yet: the engine holds
    /// the request until a reload gives one (unless `__nowaiting`), as stock does.
    pub(super) fn submit(
        self: &Arc<Self>,
        node: &str,
        source: u32,
        session: c_int,
        addr: Address<'_>,
        payload: &[u8],
        trace: Option<&[u8]>,
    ) {
        let guard = self.handle.read();
        let Some(handle) = guard.as_ref() else {
            // Being released: the caller gets its error while the context still lets us.
            drop(guard);
            if session != 0 {
                self.send(source, PTYPE_ERROR, session, &[]);
            }
            return;
        };
        let r = if session != 0 {
            let c = self.clone();
            let name = node.to_string();
            handle.call_with(node, addr, payload, CallOpts { timeout: None, trace }, move |r| {
                c.reply(&name, source, session, r)
            })
        } else {
            handle.push(node, addr, payload)
        };
        drop(guard);
        let made = if session != 0 { &self.made_calls } else { &self.made_pushes };
        made.fetch_add(1, Ordering::Relaxed);
        let Err(e) = r else {
            return;
        };
        let what = if session != 0 { "call" } else { "push" };
        self.log(&format!("cluster {what} to [{node}] failed: {}", describe(&e)));
        if session != 0 {
            self.send(source, PTYPE_ERROR, session, &[]);
        }
    }

    /// A call or push from a caller's own thread (`direct.rs`). On the I/O thread it joins
    /// the round's batch. On a skynet worker a lone request is written at once; one that
    /// follows another within [`BURST`] is queued on its link and written when the flush
    /// token sent to the service comes back (after the messages queued meanwhile), so a
    /// burst of pushes or calls leaves in one write per link, as on the message path.
    pub(super) fn submit_direct(
        self: &Arc<Self>,
        node: &str,
        source: u32,
        session: c_int,
        addr: Address<'_>,
        payload: &[u8],
    ) {
        if ON_IO_THREAD.with(|c| c.get()) {
            return self.submit(node, source, session, addr, payload, None);
        }
        let now = Instant::now();
        let burst = {
            let mut d = self.direct.lock();
            let burst = d.scheduled || d.last.is_some_and(|t| now.duration_since(t) < BURST);
            d.last = Some(now);
            burst
        };
        if !burst {
            return self.submit(node, source, session, addr, payload, None);
        }
        let ((), queued) = crate::engine::batch_deferred(|| self.submit(node, source, session, addr, payload, None));
        let mut d = self.direct.lock();
        d.pending.merge(queued);
        if !d.scheduled && !d.pending.is_empty() {
            d.scheduled = true;
            drop(d);
            if self.send_flush_token() < 0 {
                self.flush_direct();
            }
        }
    }

    /// An empty `PTYPE_TEXT` to ourselves: it comes back after the messages queued for us
    /// meanwhile, and then kept work is written (see "Batching").
    pub(super) fn send_flush_token(&self) -> c_int {
        self.send(self.self_handle.load(Ordering::Relaxed), PTYPE_TEXT, 0, &[])
    }

    /// The flush token came back: write what direct requests queued.
    pub(super) fn flush_direct(&self) {
        let pending = {
            let mut d = self.direct.lock();
            d.scheduled = false;
            std::mem::take(&mut d.pending)
        };
        pending.flush();
    }

    /// Delivers the end of an outbound call to the Lua caller.
    fn reply(&self, node: &str, source: u32, session: c_int, r: Result<Reply<'_>, CallError>) {
        match r {
            Ok(p) => {
                self.send(source, PTYPE_RESPONSE, session, &p);
            }
            Err(e) => {
                self.log(&format!("cluster call to [{node}] failed: {}", describe(&e)));
                self.send(source, PTYPE_ERROR, session, &[]);
            }
        }
        self.wake();
    }
}

fn describe(e: &CallError) -> String {
    match e {
        CallError::Remote(m) => String::from_utf8_lossy(m).into_owned(),
        e => e.to_string(),
    }
}
