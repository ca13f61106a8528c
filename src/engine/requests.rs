//! Requests that arrive on accepted links: frames cut and decoded by `wire`, multi-part ones
//! joined, stock's answers to anomalies, engine-level names (name queries, `@name`s), then
//! the host's service.

use super::budget::Counters;
use super::config::Exposure;
use super::conn::Conn;
use super::event::DownReason;
use super::io::Entry;
use super::node::Inner;
use super::pack;
use super::service::{Inbound, Responder};
use super::stats::LinkStats;
use crate::wire::{self, Address, Begin, OwnedAddress, Part, Request};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a multi-part request's header said: address, push flag, the trace tag before it.
pub(super) type ReqMeta = (OwnedAddress, bool, Option<Vec<u8>>);

/// Handles the complete request frames at the front of `data`; returns the bytes used.
pub(super) fn on_requests(inner: &Arc<Inner>, e: &mut Entry, data: &[u8]) -> Result<usize, DownReason> {
    let mut cut = wire::FrameCutter::new(data);
    for body in cut.by_ref() {
        let req = wire::decode_request(body).map_err(|err| protocol(&e.conn, format!("bad request frame: {err}")))?;
        e.last_multi = match req {
            Request::MultiHeader { session, .. } | Request::Part { session, last: false, .. } => Some(session),
            _ => None,
        };
        match req {
            Request::Trace { tag } => e.trace = Some(tag.to_vec()),
            Request::Single { addr, session, payload } => {
                let trace = e.trace.take();
                dispatch(inner, &e.conn, addr, session, payload, trace.as_deref(), session == 0, None);
            }
            Request::MultiHeader { addr, session, total, push } => {
                let trace = e.trace.take();
                let r = e.req_parts.as_mut().expect("inbound");
                match r.begin(session, total, (OwnedAddress::of(addr), push, trace)) {
                    Ok(Begin::Joining) => {}
                    // Counted when its last part is answered.
                    Ok(Begin::Spoiled) => {}
                    Ok(Begin::Refused) => {
                        // The node's reassembly budget is full: this message is the one
                        // refused, now; the link and the other messages go on.
                        Counters::add(&inner.io.counters.over_budget);
                        inner.io.log.warn(&format!(
                            "multi-part request of {total} bytes from {} refused: node reassembly budget of {} bytes is full",
                            peer_text(&e.conn),
                            inner.io.reasm.limit()
                        ));
                        if !push {
                            e.conn.respond_direct(session, Err(REASSEMBLY_FULL));
                        }
                    }
                    Err(err) => return Err(protocol(&e.conn, err.to_string())),
                }
            }
            Request::Part { session, data, last } => {
                let r = e.req_parts.as_mut().expect("inbound");
                match r.part(session, data, last, &inner.io.pool) {
                    Ok(Part::More) | Ok(Part::Dropped) => {}
                    Ok(Part::Done(meta, payload)) => request_done(inner, &e.conn, session, meta, payload),
                    // Stock answers these and keeps the link (see wire/reassembly.rs).
                    Ok(Part::Invalid(_)) => {
                        Counters::add(&inner.io.counters.protocol_errors);
                        e.conn.respond_direct(session, Err(b"Invalid large req"));
                    }
                    Ok(Part::Orphan) => {
                        Counters::add(&inner.io.counters.protocol_errors);
                        e.conn.respond_direct(session, Err(b"Invalid name"));
                    }
                    Err(err) => return Err(protocol(&e.conn, err.to_string())),
                }
            }
        }
    }
    Ok(cut.consumed())
}

/// The error text of a request refused because the node's reassembly budget is full.
pub(crate) const REASSEMBLY_FULL: &[u8] = b"overloaded: node reassembly budget is full";

/// A protocol error that closes the link (counted).
pub(super) fn protocol(conn: &Conn, why: String) -> DownReason {
    Counters::add(&conn.io.counters.protocol_errors);
    DownReason::Protocol(why)
}

pub(super) fn peer_text(conn: &Conn) -> String {
    conn.peer.map_or_else(|| "?".into(), |p| p.to_string())
}

/// A reassembled request.
pub(super) fn request_done(inner: &Arc<Inner>, conn: &Arc<Conn>, session: u32, meta: ReqMeta, payload: Vec<u8>) {
    let (addr, push, trace) = meta;
    // As `Bytes` (no copy), so that the service may keep it (Inbound::take_payload); if it
    // did not, the buffer goes back to the pool.
    let payload = bytes::Bytes::from(payload);
    dispatch(inner, conn, addr.as_addr(), session, &payload, trace.as_deref(), push, Some(&payload));
    if payload.is_unique() {
        inner.io.pool.put(Vec::from(payload));
    }
}

/// One whole request: engine-level names first, then the host's service. `owned` is the
/// buffer behind `payload` when the service may keep it without a copy.
#[allow(clippy::too_many_arguments)]
fn dispatch(
    inner: &Arc<Inner>,
    conn: &Arc<Conn>,
    addr: Address<'_>,
    session: u32,
    payload: &[u8],
    trace: Option<&[u8]>,
    push: bool,
    owned: Option<&bytes::Bytes>,
) {
    let stats = &conn.stats;
    LinkStats::add(if push { &stats.pushes } else { &stats.calls }, 1);
    let addr = match addr {
        Address::Id(0) => {
            // cluster.query: the payload is skynet.pack(name), the answer packstring(address).
            if push {
                return;
            }
            let exposure = &inner.cfg.exposure;
            let found = pack::unpack_str(payload).and_then(|(name, _)| {
                let a = inner.names.read().get(name).copied()?;
                if exposure.allows_name(name) {
                    Some(a)
                } else {
                    Counters::add(&inner.io.counters.refused_exposure);
                    None
                }
            });
            match found {
                Some(a) => {
                    let mut out = Vec::with_capacity(9);
                    pack::pack_int(&mut out, a as i64);
                    conn.respond_direct(session, Ok(&out));
                }
                None => conn.respond_direct(session, Err(b"name not found")),
            }
            return;
        }
        Address::Name(n) if n.first() == Some(&b'@') => {
            let found = inner.names.read().get(&n[1..]).copied();
            match found {
                Some(a) if inner.cfg.exposure.allows_name(&n[1..]) => Address::Id(a),
                _ => {
                    if found.is_some() {
                        Counters::add(&inner.io.counters.refused_exposure);
                    }
                    if !push {
                        conn.respond_direct(session, Err(b"Invalid name"));
                    }
                    return;
                }
            }
        }
        // Numeric handles, `.name`, `:hex`: only when everything is exposed. Refused with
        // what a stock agent answers for a name it does not know.
        _ if inner.cfg.exposure != Exposure::All => {
            Counters::add(&inner.io.counters.refused_exposure);
            if !push {
                conn.respond_direct(session, Err(b"Invalid name"));
            }
            return;
        }
        a => a,
    };
    let service = inner.service.read().clone();
    let req = Inbound { addr, session, payload, trace, peer: conn.peer, link: conn.token.0 as u64, owned };
    // A panicking handler must not take the I/O thread (and every link) down with it: the
    // panic is caught and logged; an unanswered call's Responder is dropped while unwinding,
    // which answers `no response`.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match service {
        Some(s) if push => s.push(req),
        Some(s) => {
            conn.inflight.fetch_add(1, Ordering::Relaxed);
            s.call(req, Responder::new(conn, session));
        }
        None if push => {}
        None => conn.respond_direct(session, Err(b"no service")),
    }));
    if r.is_err() {
        inner.io.log.error(&format!("service handler panicked (session {session}); link kept"));
    }
}
