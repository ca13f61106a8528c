//! The TLS hello on the I/O thread: the connecting side sends it and reads its answer, the
//! accepting side recognises it as a link's first frame, and both then switch the socket to
//! TLS (see the module documentation of `tls`). Also the read step of a TLS link, and what
//! happens when its handshake completes.

use super::{TlsMode, HELLO_ANSWER, HELLO_NAME};
use crate::engine::budget::Counters;
use crate::engine::conn::Conn;
use crate::engine::event::DownReason;
use crate::engine::io::Entry;
use crate::engine::node::Inner;
use crate::engine::pack;
use crate::engine::requests::{peer_text, protocol};
use crate::engine::stats::LinkStats;
use crate::wire::{self, Address, Request, RequestKind, Response};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;

/// The session of the hello. Nothing else is in flight on the link while it is (calls wait
/// for its answer), so it cannot collide, and the link's own sessions start where stock's
/// would (the first call is session 1), as the golden transcripts have them.
pub(crate) const HELLO_SESSION: u32 = 0x7fff_ffff;

/// What a native node with TLS `require` answers a plain-text call before closing its link.
pub(crate) const TLS_REQUIRED: &[u8] = b"tls required: this node accepts only TLS links (tls=require)";

/// The wire name of the hello (`@__skc.tls`).
fn hello_addr() -> Vec<u8> {
    let mut a = Vec::with_capacity(HELLO_NAME.len() + 1);
    a.push(b'@');
    a.extend_from_slice(HELLO_NAME.as_bytes());
    a
}

/// Writes a small frame on a link nothing else has written to yet (the hello, its answer,
/// the refusal of a plain-text caller). A fresh socket takes it whole; anything less is
/// an error.
fn write_first(conn: &Conn, frame: &[u8]) -> io::Result<()> {
    let n = (&conn.stream).write(frame)?;
    if n != frame.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "socket took only part of the TLS hello"));
    }
    LinkStats::add(&conn.stats.bytes_out, n as u64);
    Ok(())
}

/// The connecting side, when the TCP connection is up: sends the hello (the link stays
/// "connecting" until it is answered, so nothing else is written meanwhile).
pub(crate) fn send(conn: &Conn) -> io::Result<()> {
    let mut payload = Vec::with_capacity(16);
    pack::pack_str(&mut payload, HELLO_ANSWER);
    let mut frame = Vec::with_capacity(64);
    wire::encode_request(&mut frame, Address::Name(&hello_addr()), HELLO_SESSION, &payload, RequestKind::Call)
        .map_err(|e| io::Error::other(e.to_string()))?;
    write_first(conn, &frame)
}

/// The connecting side: the answer to the hello, at the front of `data`. Returns the bytes
/// used (0 while it is incomplete). The link then goes on in TLS, or in plain text (a
/// stock or TLS-off peer, mode `prefer`), or closes (mode `require`).
pub(in crate::engine) fn on_answer(
    inner: &Arc<Inner>,
    e: &mut Entry,
    data: &[u8],
    now: Instant,
) -> Result<usize, DownReason> {
    let mut cut = wire::FrameCutter::new(data);
    let Some(body) = cut.next() else { return Ok(0) };
    let used = cut.consumed();
    let conn = e.conn.clone();
    let resp =
        wire::decode_response(body).map_err(|err| protocol(&conn, format!("bad answer to the TLS hello: {err}")))?;
    e.hello = false;
    if used != data.len() {
        return Err(protocol(&conn, "data after the answer to the TLS hello".into()));
    }
    match resp {
        Response::Ok { session: HELLO_SESSION, payload } if payload == HELLO_ANSWER => {
            start(inner, e, now, |ctx| ctx.client(&conn.node))?;
            conn.st.lock().connected = true;
            // Writes the ClientHello; the calls queued meanwhile wait in rustls until the
            // handshake completes.
            conn.flush_or_report();
            Ok(used)
        }
        Response::Error { session: HELLO_SESSION, msg } => {
            if inner.tls.mode == TlsMode::Require {
                Counters::add(&inner.io.counters.refused_plain);
                return Err(DownReason::Tls(format!(
                    "node {} does not speak TLS (it answered the TLS hello {:?}), and tls=require refuses plain text",
                    conn.node,
                    String::from_utf8_lossy(msg)
                )));
            }
            // A stock node (or one with TLS off): plain text, as stock.
            up(inner, &conn);
            Ok(used)
        }
        _ => Err(protocol(&conn, "unexpected answer to the TLS hello".into())),
    }
}

/// The accepting side: the link's first frame, at the front of `data`. `Some(used)` when it
/// was handled here (the hello: answered, and the link switched to TLS; or 0 while the
/// frame is incomplete); `None` when it is an ordinary first frame of a plain-text peer,
/// to be handled as usual. In mode `require` a plain-text peer is refused (a call among
/// its first frame answered with [`TLS_REQUIRED`]) and its link closed.
pub(in crate::engine) fn on_first(
    inner: &Arc<Inner>,
    e: &mut Entry,
    data: &[u8],
    now: Instant,
) -> Result<Option<usize>, DownReason> {
    let mut cut = wire::FrameCutter::new(data);
    let Some(body) = cut.next() else { return Ok(Some(0)) };
    let used = cut.consumed();
    e.first_frame = false;
    let conn = e.conn.clone();
    let req = wire::decode_request(body).ok();
    if let Some(Request::Single { addr: Address::Name(n), session, .. }) = req {
        if n.first() == Some(&b'@') && &n[1..] == HELLO_NAME.as_bytes() {
            if used != data.len() {
                return Err(protocol(&conn, "data after the TLS hello".into()));
            }
            let mut frame = Vec::with_capacity(32);
            let _ = wire::encode_response(&mut frame, session, Ok(HELLO_ANSWER));
            write_first(&conn, &frame).map_err(|err| DownReason::Io(format!("write failed: {err}")))?;
            start(inner, e, now, |ctx| ctx.server())?;
            return Ok(Some(used));
        }
    }
    if inner.tls.mode != TlsMode::Require {
        return Ok(None);
    }
    Counters::add(&inner.io.counters.refused_plain);
    let session = match req {
        Some(Request::Single { session, .. }) => session,
        Some(Request::MultiHeader { session, push: false, .. }) => session,
        _ => 0,
    };
    if session != 0 {
        let mut frame = Vec::with_capacity(TLS_REQUIRED.len() + 8);
        let _ = wire::encode_response(&mut frame, session, Err(TLS_REQUIRED));
        let _ = write_first(&conn, &frame);
    }
    Err(DownReason::Tls(format!(
        "plain-text peer {} refused (a stock node, or TLS off), and tls=require refuses plain text",
        peer_text(&conn)
    )))
}

/// Switches the link to TLS with a session made by `make` from the node's current
/// certificates; its handshake must complete within `connect_timeout`.
fn start(
    inner: &Arc<Inner>,
    e: &mut Entry,
    now: Instant,
    make: impl FnOnce(&super::TlsContext) -> Result<super::Session, String>,
) -> Result<(), DownReason> {
    let ctx = inner.tls.context().ok_or_else(|| DownReason::Tls("tls: no certificates loaded".into()))?;
    let session = make(&ctx).map_err(|err| {
        Counters::add(&inner.io.counters.tls_failures);
        DownReason::Tls(err)
    })?;
    let _ = e.conn.tls.set(parking_lot::Mutex::new(super::TlsLink::new(session)));
    e.tls_deadline = Some(now + inner.cfg.connect_timeout);
    inner.io.note_deadline(now + inner.cfg.connect_timeout);
    Ok(())
}

/// An outbound link is usable: in plain text after the hello, or when its TLS handshake
/// completed. Calls queued while it was connecting leave now.
fn up(inner: &Arc<Inner>, conn: &Arc<Conn>) {
    {
        let mut st = conn.st.lock();
        st.connected = true;
        st.ever_connected = true;
    }
    LinkStats::add(&conn.stats.connects, 1);
    inner.link_event(conn.event(None));
    conn.flush_or_report();
}

/// One read on a TLS link: decrypted bytes into `out`. `Ok(None)`: nothing more for now.
/// Writes what the session wants written (handshake messages, alerts), and finishes the
/// handshake's bookkeeping when it completes.
#[cfg(feature = "tls")]
pub(in crate::engine) fn read(inner: &Arc<Inner>, e: &mut Entry, out: &mut [u8]) -> Result<Option<usize>, DownReason> {
    use super::TlsError;
    let conn = e.conn.clone();
    let tls = conn.tls.get().expect("a TLS link");
    let mut link = tls.lock();
    let r = link.read_plain(&conn.stream, out);
    let established = link.take_established();
    let handshaking = link.is_handshaking();
    let wants = link.wants_write();
    let fine = match &r {
        Ok(_) => true,
        Err(TlsError::Io(err)) => err.kind() == io::ErrorKind::WouldBlock,
        Err(TlsError::Tls(_)) => false,
    };
    if matches!(r, Err(TlsError::Tls(_))) {
        // Tell the peer why (the alert rustls queued), best effort.
        let _ = link.write_records(&conn.stream);
    }
    drop(link);
    if established {
        e.tls_deadline = None;
        Counters::add(&inner.io.counters.tls_links);
        if !conn.inbound {
            up(inner, &conn);
        }
    } else if wants && fine {
        conn.flush_or_report();
    }
    let failed = |why: String| {
        if handshaking {
            Counters::add(&inner.io.counters.tls_failures);
        }
        DownReason::Tls(why)
    };
    match r {
        Ok(0) if handshaking => Err(failed("peer closed the connection during the TLS handshake".into())),
        Ok(0) => Err(DownReason::PeerClosed),
        Ok(n) => Ok(Some(n)),
        Err(TlsError::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(TlsError::Io(err)) if handshaking => Err(failed(format!("read failed during the TLS handshake: {err}"))),
        Err(TlsError::Io(err)) => Err(DownReason::Io(format!("read failed: {err}"))),
        Err(TlsError::Tls(why)) => Err(failed(format!("tls: {why}"))),
    }
}

#[cfg(not(feature = "tls"))]
pub(in crate::engine) fn read(_: &Arc<Inner>, e: &mut Entry, _: &mut [u8]) -> Result<Option<usize>, DownReason> {
    match *e.conn.tls.get().expect("a TLS link").lock() {}
}

/// A TLS handshake that did not complete in time: counted; the caller closes the link.
pub(crate) fn handshake_expired(inner: &Inner, conn: &Conn) -> DownReason {
    Counters::add(&inner.io.counters.tls_failures);
    let after = inner.cfg.connect_timeout;
    DownReason::Tls(format!("TLS handshake with {} not completed within {after:?}", peer_text(conn)))
}
