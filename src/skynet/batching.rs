//! Batching and the ownership of kept skynet messages: see "Batching" in the module docs.
//! A message the callback keeps (returns 1) is a [`MsgBuf`] inside an [`Item`] until the
//! flush token comes back; then every kept item is written inside one engine batch.

use super::{Inst, ON_IO_THREAD};
use crate::engine::Responder;
use crate::wire::OwnedAddress;
use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

/// A skynet-allocated buffer we own: a message the service kept (its callback returned 1)
/// or a `skynet.pack` message taken by `direct.rs`; freed with skynet_free on drop.
pub(super) struct MsgBuf {
    pub(super) ptr: *mut c_void,
    pub(super) len: usize,
    pub(super) free: unsafe extern "C" fn(*mut c_void),
}

impl MsgBuf {
    pub(super) fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: a message skynet handed us (len readable bytes) that we own until drop.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for MsgBuf {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the message was allocated by skynet (skynet_malloc) and given to us
            // when the callback returned 1; freed once, here.
            unsafe { (self.free)(self.ptr) }
        }
    }
}

/// Work kept until the flush token: see "Batching" in the module docs.
pub(super) enum Item {
    /// A target's answer to an inbound call.
    Answer { responder: Responder, msg: MsgBuf },
    /// A call or push from Lua: node = msg[node.0..node.1], payload = msg[payload..].
    Request {
        msg: MsgBuf,
        source: u32,
        session: c_int,
        node: (usize, usize),
        addr: OwnedAddress,
        payload: usize,
        trace: Option<Vec<u8>>,
    },
}

#[derive(Default)]
pub(super) struct Pending {
    pub(super) items: Vec<Item>,
    scheduled: bool,
    /// The last flush carried at most one item: traffic is sparse, so the next item is
    /// handled at once (no flush token) unless it follows the previous one within
    /// [`BURST`].
    lone: bool,
    last_immediate: Option<Instant>,
}

/// Two items closer than this are a burst: batching pays off again.
pub(super) const BURST: Duration = Duration::from_micros(50);

impl Inst {
    pub(super) fn keep(&self, msg: *const c_void, len: usize) -> MsgBuf {
        MsgBuf { ptr: msg as *mut c_void, len, free: self.core().api.free }
    }

    /// Keeps `item` until the flush token, which is sent to ourselves with the first item:
    /// it comes back after the messages already queued for us, so everything that arrived
    /// meanwhile leaves in one write per link (and a lone call waits one message longer).
    pub(super) fn defer(&self, item: Item) {
        if ON_IO_THREAD.with(|c| c.get()) {
            // Inline dispatch: the round's batch scope already gathers every write of the
            // round into one per link; no flush token needed. Items a worker kept go
            // first (a caller's pushes stay in order).
            let mut items = std::mem::take(&mut self.pending.lock().items);
            items.push(item);
            return self.run(items);
        }
        let mut p = self.pending.lock();
        if p.lone && !p.scheduled {
            let now = Instant::now();
            let burst = p.last_immediate.is_some_and(|t| now.duration_since(t) < BURST);
            p.last_immediate = Some(now);
            if !burst {
                drop(p);
                return self.run(vec![item]);
            }
            p.lone = false;
        }
        p.items.push(item);
        if !p.scheduled {
            p.scheduled = true;
            drop(p);
            self.core().send_flush_token();
        }
    }

    pub(super) fn flush(&self) {
        let items = {
            let mut p = self.pending.lock();
            p.scheduled = false;
            let items = std::mem::take(&mut p.items);
            if items.len() <= 1 {
                p.lone = true;
            }
            items
        };
        self.run(items);
    }

    fn run(&self, items: Vec<Item>) {
        if items.is_empty() {
            return;
        }
        crate::engine::batch(|| {
            for it in items {
                match it {
                    Item::Answer { responder, msg } => responder.ok(msg.as_slice()),
                    Item::Request { msg, source, session, node, addr, payload, trace } => {
                        let b = msg.as_slice();
                        // Checked to be UTF-8 when the request was kept.
                        let node = std::str::from_utf8(&b[node.0..node.1]).unwrap_or("");
                        self.core().submit(node, source, session, addr.as_addr(), &b[payload..], trace.as_deref());
                    }
                }
            }
        });
    }
}
