//! The direct read path for large multi-part messages: once a read stops inside a part, the
//! rest of it (and the parts of the same message that follow) is read with `readv` straight
//! into the message's reassembly buffer, the 7-byte part headers landing in a small array
//! between the parts and checked. A multi-part payload is then copied at most once.

use super::answers::complete_multi;
use super::event::DownReason;
use super::io::{process, Entry};
use super::node::Inner;
use super::requests::request_done;
use super::stats::LinkStats;
use crate::wire::{self, PART_HEADER};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// A part whose body is being read straight into its message's reassembly buffer.
pub(super) struct Direct {
    session: u32,
    /// Bytes of the part's body still to come.
    left: usize,
    last: bool,
}

/// Smallest rest of a message worth reading straight into its reassembly buffer.
const DIRECT_MIN: usize = 16 << 10;

/// Most parts one direct read expects after the current one (1 MiB).
const DIRECT_PARTS: usize = 32;

/// Room a direct read that should complete a message of `DIRECT_BIG` bytes or more leaves
/// for what follows: small, so that the next large message's first part is likely cut
/// short and joined directly too. After smaller messages the whole read buffer follows
/// (measured: a 16 KiB tail after 64 KiB messages costs more in syscalls and early writes
/// than the copies it saves).
const DIRECT_TAIL: usize = 16 << 10;

const DIRECT_BIG: usize = 256 << 10;

/// If `rest` (an incomplete frame) is a part of a message being joined, with its header
/// complete and at least `DIRECT_MIN` bytes of its body still to come: moves what is there
/// into the message's buffer and sets `e.direct`.
pub(super) fn start_direct(e: &mut Entry, rest: &[u8]) -> bool {
    let head =
        if e.conn.inbound { wire::decode_request_part_header(rest) } else { wire::decode_response_part_header(rest) };
    let Some(wire::PartHeader { session, len: body, last }) = head else {
        return false;
    };
    let have = rest.len() - PART_HEADER;
    if have >= body {
        return false;
    }
    let pool = &e.conn.io.pool;
    let found = if e.conn.inbound {
        e.req_parts.as_mut().and_then(|r| r.direct(session, body, last, pool))
    } else {
        e.resp_parts.as_mut().and_then(|r| r.direct(session, body, last, pool))
    };
    let Some((buf, total)) = found else {
        return false;
    };
    if total - buf.len() - have < DIRECT_MIN {
        return false;
    }
    buf.extend_from_slice(&rest[PART_HEADER..]);
    e.direct = Some(Direct { session, left: body - have, last });
    true
}

/// When the data ended right after a header or part of a message still being joined of
/// at least `DIRECT_MIN` more bytes: expects its next part at the start of the next read
/// (sets `e.direct` with nothing left of a current part).
pub(super) fn direct_at_boundary(e: &mut Entry) -> bool {
    let Some(session) = e.last_multi else {
        return false;
    };
    let pool = &e.conn.io.pool;
    let found = if e.conn.inbound {
        e.req_parts.as_mut().and_then(|r| r.direct(session, 0, false, pool))
    } else {
        e.resp_parts.as_mut().and_then(|r| r.direct(session, 0, false, pool))
    };
    match found {
        Some((buf, total)) if total - buf.len() >= DIRECT_MIN => {
            e.direct = Some(Direct { session, left: 0, last: false });
            true
        }
        _ => false,
    }
}

/// One `readv` while `e.direct` is set: the rest of the current part goes straight into
/// its message's buffer, and so do the following parts of the same message (up to
/// `DIRECT_PARTS`), whose 7-byte headers land in a small array between them and are
/// checked against what they must be. Whatever does not match (a stock peer interleaving
/// other frames) and what follows the message is then handled as usual. Returns the bytes
/// read and the room offered, or `None` on `WouldBlock`.
pub(super) fn read_direct(
    inner: &Arc<Inner>,
    e: &mut Entry,
    scratch: &mut [u8],
) -> Result<Option<(usize, usize)>, DownReason> {
    let d = e.direct.take().expect("direct read without a direct part");
    let session = d.session;
    let inbound = e.conn.inbound;
    let fd = e.conn.stream.as_raw_fd();
    let found = if inbound {
        e.req_parts.as_mut().and_then(|r| r.buf(session))
    } else {
        e.resp_parts.as_mut().and_then(|r| r.buf(session))
    };
    let Some((buf, total)) = found else {
        return Err(DownReason::Protocol(format!("multi-part session {session} vanished")));
    };
    // The parts expected: (data bytes, last), the current one first.
    let mut parts = [(0usize, false); DIRECT_PARTS + 1];
    let mut expect = [[0u8; PART_HEADER]; DIRECT_PARTS];
    parts[0] = (d.left, d.last);
    let mut np = 1;
    let mut pos = buf.len() + d.left;
    if !d.last {
        while pos < total && np <= DIRECT_PARTS {
            let chunk = (total - pos).min(wire::MULTI_PART);
            let last = pos + chunk == total;
            expect[np - 1] = if inbound {
                wire::request_part_header(session, chunk, last)
            } else {
                wire::response_part_header(session, chunk, last)
            };
            parts[np] = (chunk, last);
            np += 1;
            pos += chunk;
        }
    }
    debug_assert!(pos <= total && total <= buf.capacity());
    let completes = parts[np - 1].1;
    let tail = match (completes, total >= DIRECT_BIG) {
        (false, _) => 0,
        (true, true) => DIRECT_TAIL.min(scratch.len()),
        (true, false) => scratch.len(),
    };
    let mut hdrs = [[0u8; PART_HEADER]; DIRECT_PARTS];
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(2 * np + 1);
    let base = buf.as_mut_ptr();
    let mut off = buf.len();
    for (i, &(len, _)) in parts[..np].iter().enumerate() {
        if i > 0 {
            iov.push(libc::iovec { iov_base: hdrs[i - 1].as_mut_ptr().cast(), iov_len: PART_HEADER });
        }
        if len == 0 {
            continue; // at a frame boundary: the plan starts with the next part's header
        }
        // SAFETY: `off + len <= pos <= total <= buf.capacity()` (the plan above stops at the
        // declared total and the buffer was taken with that capacity), so the pointer stays
        // inside the buffer's allocation.
        iov.push(libc::iovec { iov_base: unsafe { base.add(off) }.cast(), iov_len: len });
        off += len;
    }
    if tail > 0 {
        iov.push(libc::iovec { iov_base: scratch.as_mut_ptr().cast(), iov_len: tail });
    }
    let room: usize = iov.iter().map(|v| v.iov_len).sum();
    let r = loop {
        // Every iovec describes memory we own and nobody else touches during the call:
        // spare capacity of `buf` (in bounds, see above), the `hdrs` array, the front of
        // `scratch`; the kernel writes at most `iov_len` bytes to each.
        // SAFETY: as above; `fd` is the link's open socket, kept alive by `e.conn`.
        let r = unsafe { libc::readv(fd, iov.as_ptr(), iov.len() as libc::c_int) };
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    drop(iov);
    if r < 0 {
        let err = io::Error::last_os_error();
        e.direct = Some(d);
        return match err.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(DownReason::Io(format!("read failed: {err}"))),
        };
    }
    if r == 0 {
        return Err(DownReason::PeerClosed);
    }
    let n = r as usize;
    LinkStats::add(&e.conn.stats.bytes_in, n as u64);
    // Walk what arrived, in stream order.
    let mut k = n;
    let mut len = buf.len();
    let mut off = len;
    let mut leftover: Option<Vec<u8>> = None;
    let mut complete = false;
    for (i, &(plen, last)) in parts[..np].iter().enumerate() {
        if k == 0 {
            break;
        }
        let hm = if i > 0 { k.min(PART_HEADER) } else { 0 };
        k -= hm;
        let dm = k.min(plen);
        k -= dm;
        let matched = leftover.is_none() && (i == 0 || (hm == PART_HEADER && hdrs[i - 1] == expect[i - 1]));
        if matched {
            // SAFETY: the kernel wrote these `dm` bytes right after the buffer's current
            // length (`off == len` while every part so far matched), within its capacity.
            unsafe { buf.set_len(len + dm) };
            len += dm;
            if dm < plen {
                e.direct = Some(Direct { session, left: plen - dm, last });
                debug_assert_eq!(k, 0);
                return Ok(Some((n, room)));
            }
            complete = last;
        } else {
            let lo = leftover.get_or_insert_with(Vec::new);
            lo.extend_from_slice(&hdrs[i - 1][..hm]);
            // SAFETY: the kernel wrote these `dm` bytes at `off` inside the buffer's
            // capacity (the iovec above), so they are initialized; nothing else aliases them.
            lo.extend_from_slice(unsafe { std::slice::from_raw_parts(base.add(off), dm) });
        }
        off += plen;
    }
    if complete {
        if inbound {
            if let Some((meta, payload)) = e.req_parts.as_mut().and_then(|r| r.take_full(session)) {
                request_done(inner, &e.conn, session, meta, payload);
            }
        } else if let Some(((), payload)) = e.resp_parts.as_mut().and_then(|r| r.take_full(session)) {
            complete_multi(&e.conn, session, payload);
        }
    }
    match leftover {
        Some(mut lo) => {
            lo.extend_from_slice(&scratch[..k]);
            process(inner, e, &lo)?;
        }
        None => process(inner, e, &scratch[..k])?,
    }
    Ok(Some((n, room)))
}
