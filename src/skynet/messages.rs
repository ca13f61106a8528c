//! What the service does with each skynet message it receives (the callback's body):
//! answers of targets, flush tokens, wake-up bytes, trace tags, and `PTYPE_LUA` messages
//! from cluster.lua: a call or push (kept for the next flush, `batching.rs`) or a control
//! command (`commands.rs`).

use super::api::*;
use super::batching::Item;
use super::inbound::InCall;
use super::packed::read_addr;
use super::Inst;
use std::ffi::{c_int, c_void};
use std::sync::atomic::Ordering;

impl Inst {
    /// Returns what the skynet callback returns: 1 when the message was kept.
    pub(super) fn on_message(&self, ty: c_int, session: c_int, source: u32, msg: *const c_void, data: &[u8]) -> c_int {
        let core = self.core();
        match ty {
            PTYPE_RESPONSE => {
                let r = core.inflight.lock().remove(&session);
                if let Some(InCall { responder, .. }) = r {
                    self.defer(Item::Answer { responder, msg: self.keep(msg, data.len()) });
                    return 1;
                }
            }
            PTYPE_TEXT if source == core.self_handle.load(Ordering::Relaxed) => {
                core.flush_direct();
                self.flush();
            }
            PTYPE_ERROR => {
                if session != 0 {
                    let r = core.inflight.lock().remove(&session);
                    if let Some(c) = r {
                        let t = core.texts.read().call_failed.clone();
                        c.responder.error(&t);
                    }
                }
            }
            PTYPE_SOCKET => {
                if data.len() >= std::mem::size_of::<SocketMessage>() {
                    // SAFETY: a PTYPE_SOCKET message is a skynet_socket_message (maybe
                    // followed by padding); read unaligned to be safe.
                    let sm = unsafe { std::ptr::read_unaligned(msg as *const SocketMessage) };
                    if sm.ty == SKYNET_SOCKET_TYPE_DATA && !sm.buffer.is_null() {
                        // SAFETY: the data buffer of a socket DATA message belongs to the
                        // receiver, allocated with skynet_malloc.
                        unsafe { (core.api.free)(sm.buffer.cast()) };
                    }
                    if sm.id == self.wake_id {
                        core.wake_pending.store(false, Ordering::SeqCst);
                    }
                }
            }
            PTYPE_TRACE => {
                self.core().st.lock().trace.insert(source, data.to_vec());
            }
            PTYPE_LUA => return self.on_lua(session, source, msg, data),
            _ => {
                core.log(&format!("skcluster: unexpected message type {ty} from :{source:08x}"));
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
            }
        }
        0
    }

    fn on_lua(&self, session: c_int, source: u32, msg: *const c_void, data: &[u8]) -> c_int {
        let core = self.core();
        // Node name first: the hot path reads two values by hand and forwards the rest.
        if let Some((node, used)) = crate::seri::decode_str_prefix(data) {
            let rest = &data[used..];
            let Some((addr, used2)) = read_addr(rest) else {
                core.log("skcluster: bad cluster request (address must be a number or a string)");
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
                return 0;
            };
            if std::str::from_utf8(node).is_err() {
                core.log("skcluster: node name is not UTF-8");
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
                return 0;
            }
            let node_start = used - node.len();
            let trace = if session != 0 { self.core().st.lock().trace.remove(&source) } else { None };
            let msg = self.keep(msg, data.len());
            self.defer(Item::Request {
                msg,
                source,
                session,
                node: (node_start, used),
                addr,
                payload: used + used2,
                trace,
            });
            return 1;
        }
        self.on_control(session, source, data);
        0
    }
}
