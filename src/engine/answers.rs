//! Answers that arrive on links we opened: single frames complete their call at once,
//! multi-part ones are joined first (with the node's reassembly budget).

use super::budget::Counters;
use super::conn::Conn;
use super::event::DownReason;
use super::io::{Entry, Reassembler};
use super::requests::protocol;
use super::stats::LinkStats;
use crate::wire::{self, Begin, Part, Response};
use std::sync::atomic::Ordering;

/// A reassembled answer.
pub(super) fn complete_multi(conn: &Conn, session: u32, payload: Vec<u8>) {
    complete(conn, session, Ok(super::Reply::pooled(payload, conn.io.clone())));
}

/// Handles the complete response frames at the front of `data`; returns the bytes used.
pub(super) fn on_responses(e: &mut Entry, data: &[u8]) -> Result<usize, DownReason> {
    let mut cut = wire::FrameCutter::new(data);
    for body in cut.by_ref() {
        let resp =
            wire::decode_response(body).map_err(|err| protocol(&e.conn, format!("bad response frame: {err}")))?;
        e.last_multi = match resp {
            Response::MultiBegin { session, .. } | Response::MultiPart { session, last: false, .. } => Some(session),
            _ => None,
        };
        match resp {
            Response::Ok { session, payload } => complete(&e.conn, session, Ok(super::Reply::borrowed(payload))),
            Response::Error { session, msg } => complete(&e.conn, session, Err(super::CallError::Remote(msg.to_vec()))),
            Response::MultiBegin { session, total } => {
                let conn = &e.conn;
                let r = e.resp_parts.get_or_insert_with(|| {
                    Reassembler::with_budget(conn.max_message, conn.max_multi_pending, conn.io.reasm.clone())
                });
                match r.begin(session, total, ()) {
                    Ok(Begin::Joining) => {}
                    Ok(Begin::Refused) => {
                        // This answer is the one refused: its call fails now, its parts are dropped.
                        Counters::add(&conn.io.counters.over_budget);
                        complete(conn, session, Err(super::CallError::Overloaded));
                    }
                    Ok(Begin::Spoiled) => {
                        return Err(protocol(conn, format!("duplicate multi-part answer for session {session}")))
                    }
                    Err(err) => return Err(protocol(conn, err.to_string())),
                }
            }
            Response::MultiPart { session, data, last } => {
                let Some(r) = e.resp_parts.as_mut() else {
                    return Err(protocol(&e.conn, format!("multi-part piece for unknown session {session}")));
                };
                let pool = &e.conn.io.pool;
                match r.part(session, data, last, pool) {
                    Ok(Part::More) | Ok(Part::Dropped) => {}
                    Ok(Part::Done((), payload)) => complete_multi(&e.conn, session, payload),
                    Ok(Part::Invalid(_)) | Ok(Part::Orphan) => {
                        return Err(protocol(&e.conn, format!("bad multi-part answer for session {session}")))
                    }
                    Err(err) => return Err(protocol(&e.conn, err.to_string())),
                }
            }
        }
    }
    Ok(cut.consumed())
}

pub(super) fn complete(conn: &Conn, session: u32, r: Result<super::Reply<'_>, super::CallError>) {
    let p = conn.st.lock().pending.remove(&session);
    let Some(p) = p else { return }; // timed out meanwhile: dropped
    if !conn.answered.load(Ordering::Relaxed) {
        conn.answered.store(true, Ordering::Relaxed);
    }
    if matches!(p.waiter, super::call::Waiter::Probe) {
        return;
    }
    conn.stats.record_latency(p.start.elapsed().as_micros() as u64);
    if r.is_err() {
        LinkStats::add(&conn.stats.errors, 1);
    }
    p.complete(r, &conn.io.log);
}
