//! Per-session reassembly of multi-part messages.
//!
//! Stock skynet writes the parts of a large message at low priority, so other sessions'
//! frames may arrive between a header and its parts, and parts of several messages may
//! interleave. Reassembly is therefore keyed by session, never by arrival order.

use std::collections::HashMap;
use std::fmt;

/// Why a part could not be accepted. The partial message of that session is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReassemblyError {
    /// A header declared more bytes than the configured limit allows.
    TooLarge { session: u32, total: u64, limit: usize },
    /// A header arrived for a session that is already being reassembled.
    DuplicateSession(u32),
    /// A part arrived for a session with no header.
    UnknownSession(u32),
    /// The parts carried more bytes than the header declared.
    Overflow { session: u32, total: u64 },
    /// The last part arrived but the byte count differs from the header's.
    SizeMismatch { session: u32, total: u64, got: u64 },
    /// More messages are in flight than the configured limit allows.
    TooManyPending(usize),
}

impl fmt::Display for ReassemblyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReassemblyError::TooLarge { session, total, limit } => {
                write!(f, "multi-part message of session {session} declares {total} bytes, limit is {limit}")
            }
            ReassemblyError::DuplicateSession(s) => {
                write!(f, "duplicate multi-part header for session {s}")
            }
            ReassemblyError::UnknownSession(s) => {
                write!(f, "multi-part piece for unknown session {s}")
            }
            ReassemblyError::Overflow { session, total } => {
                write!(f, "multi-part message of session {session} exceeds its declared {total} bytes")
            }
            ReassemblyError::SizeMismatch { session, total, got } => {
                write!(f, "multi-part message of session {session} declared {total} bytes but carried {got}")
            }
            ReassemblyError::TooManyPending(n) => {
                write!(f, "too many multi-part messages in flight (limit {n})")
            }
        }
    }
}

impl std::error::Error for ReassemblyError {}

struct Partial<M> {
    meta: M,
    total: usize,
    data: Vec<u8>,
}

/// Joins multi-part messages per session. `M` is whatever the caller needs to remember
/// from the header (address, push flag, trace tag...).
///
/// Memory: nothing is reserved on `begin`; the first part reserves the declared total
/// (bounded by `max_total`), so a header alone costs no payload memory and the payload is
/// copied exactly once, from the parts into the final buffer.
pub struct Reassembler<M> {
    pending: HashMap<u32, Partial<M>>,
    max_total: usize,
    max_pending: usize,
}

impl<M> Reassembler<M> {
    /// `max_total`: largest message accepted; `max_pending`: most messages in flight at once.
    pub fn new(max_total: usize, max_pending: usize) -> Self {
        Reassembler { pending: HashMap::new(), max_total, max_pending }
    }

    /// Starts a message of `total` bytes for `session`.
    pub fn begin(&mut self, session: u32, total: u32, meta: M) -> Result<(), ReassemblyError> {
        let total = total as usize;
        if total > self.max_total {
            return Err(ReassemblyError::TooLarge { session, total: total as u64, limit: self.max_total });
        }
        if self.pending.contains_key(&session) {
            self.pending.remove(&session);
            return Err(ReassemblyError::DuplicateSession(session));
        }
        if self.pending.len() >= self.max_pending {
            return Err(ReassemblyError::TooManyPending(self.max_pending));
        }
        self.pending.insert(session, Partial { meta, total, data: Vec::new() });
        Ok(())
    }

    /// Adds one part. Returns the header's meta and the whole payload after the last part.
    /// On error the session's partial message is dropped.
    pub fn part(&mut self, session: u32, chunk: &[u8], last: bool) -> Result<Option<(M, Vec<u8>)>, ReassemblyError> {
        let Some(p) = self.pending.get_mut(&session) else {
            return Err(ReassemblyError::UnknownSession(session));
        };
        let total = p.total;
        let got = p.data.len() + chunk.len();
        if got > total {
            self.pending.remove(&session);
            return Err(ReassemblyError::Overflow { session, total: total as u64 });
        }
        if last && got != total {
            self.pending.remove(&session);
            return Err(ReassemblyError::SizeMismatch { session, total: total as u64, got: got as u64 });
        }
        if p.data.capacity() == 0 {
            p.data.reserve_exact(total);
        }
        p.data.extend_from_slice(chunk);
        if !last {
            return Ok(None);
        }
        let p = self.pending.remove(&session).expect("present: looked up above");
        Ok(Some((p.meta, p.data)))
    }

    /// Drops the partial message of `session`, if any, and returns its meta.
    pub fn abort(&mut self, session: u32) -> Option<M> {
        self.pending.remove(&session).map(|p| p.meta)
    }

    /// Messages currently being reassembled.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes held by partial messages.
    pub fn buffered_bytes(&self) -> usize {
        self.pending.values().map(|p| p.data.capacity()).sum()
    }

    /// Drops every partial message, returning their metas (e.g. to fail pending calls).
    pub fn drain(&mut self) -> impl Iterator<Item = (u32, M)> + '_ {
        self.pending.drain().map(|(s, p)| (s, p.meta))
    }
}
