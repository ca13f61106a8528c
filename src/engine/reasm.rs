//! Per-session joining of multi-part messages, with buffers from the node's [`Pool`].
//! Same rules and errors as `wire::Reassembler` (which allocates on its own).

use super::pool::Pool;
use crate::wire::ReassemblyError;
use std::collections::HashMap;

struct Partial<M> {
    meta: M,
    total: usize,
    data: Vec<u8>,
}

pub(crate) struct Reasm<M> {
    pending: HashMap<u32, Partial<M>>,
    max_total: usize,
    max_pending: usize,
    /// Sum of the declared totals being joined: bounded by `max_total` too, so that a peer
    /// cannot make one link hold `max_pending` buffers of `max_total` bytes each.
    declared: usize,
}

impl<M> Reasm<M> {
    pub fn new(max_total: usize, max_pending: usize) -> Self {
        Reasm { pending: HashMap::new(), max_total, max_pending, declared: 0 }
    }

    pub fn begin(&mut self, session: u32, total: u32, meta: M) -> Result<(), ReassemblyError> {
        let total = total as usize;
        if total > self.max_total || self.declared + total > self.max_total {
            return Err(ReassemblyError::TooLarge {
                session,
                total: (self.declared + total) as u64,
                limit: self.max_total,
            });
        }
        if self.remove(session).is_some() {
            return Err(ReassemblyError::DuplicateSession(session));
        }
        if self.pending.len() >= self.max_pending {
            return Err(ReassemblyError::TooManyPending(self.max_pending));
        }
        self.declared += total;
        self.pending.insert(session, Partial { meta, total, data: Vec::new() });
        Ok(())
    }

    fn remove(&mut self, session: u32) -> Option<Partial<M>> {
        let p = self.pending.remove(&session)?;
        self.declared -= p.total;
        Some(p)
    }

    /// For a part of `len` bytes (`last`: the final one) that is read straight from the
    /// socket into the message's buffer: the buffer (with at least `total` bytes of
    /// capacity) and the declared total, or `None` when the part would be refused (the
    /// normal path, [`Reasm::part`], then reports it when the frame is complete).
    /// `len == 0` asks for the buffer between two parts: `None` before the first part, so
    /// that a header alone still costs no payload memory.
    pub fn direct(&mut self, session: u32, len: usize, last: bool, pool: &Pool) -> Option<(&mut Vec<u8>, usize)> {
        let p = self.pending.get_mut(&session)?;
        let got = p.data.len() + len;
        if got > p.total || (last && got != p.total) || (!last && got == p.total) {
            return None;
        }
        if p.data.capacity() == 0 {
            if len == 0 {
                return None;
            }
            p.data = pool.get(p.total);
        }
        Some((&mut p.data, p.total))
    }

    /// The buffer and declared total of a message being joined.
    pub fn buf(&mut self, session: u32) -> Option<(&mut Vec<u8>, usize)> {
        self.pending.get_mut(&session).map(|p| (&mut p.data, p.total))
    }

    /// Removes a message whose buffer holds its whole declared size.
    pub fn take_full(&mut self, session: u32) -> Option<(M, Vec<u8>)> {
        match self.pending.get(&session) {
            Some(p) if p.data.len() == p.total => self.remove(session).map(|p| (p.meta, p.data)),
            _ => None,
        }
    }

    /// Adds a part; the whole message after the last one. The first part takes a buffer of
    /// the declared size from the pool (so a header alone costs no payload memory).
    pub fn part(&mut self, session: u32, chunk: &[u8], last: bool, pool: &Pool) -> Result<Option<(M, Vec<u8>)>, ReassemblyError> {
        let Some(p) = self.pending.get_mut(&session) else {
            return Err(ReassemblyError::UnknownSession(session));
        };
        let total = p.total;
        let got = p.data.len() + chunk.len();
        if got > total {
            self.remove(session);
            return Err(ReassemblyError::Overflow { session, total: total as u64 });
        }
        if last && got != total {
            self.remove(session);
            return Err(ReassemblyError::SizeMismatch { session, total: total as u64, got: got as u64 });
        }
        if p.data.capacity() == 0 {
            p.data = pool.get(total);
        }
        p.data.extend_from_slice(chunk);
        if !last {
            return Ok(None);
        }
        let p = self.remove(session).expect("looked up above");
        Ok(Some((p.meta, p.data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_interleaved_and_rejects_bad_sequences() {
        let pool = Pool::default();
        let mut r: Reasm<u8> = Reasm::new(100, 2);
        r.begin(1, 4, 10).unwrap();
        r.begin(2, 2, 20).unwrap();
        assert_eq!(r.begin(3, 1, 30), Err(ReassemblyError::TooManyPending(2)));
        assert_eq!(r.part(1, b"ab", false, &pool), Ok(None));
        assert_eq!(r.part(2, b"xy", true, &pool), Ok(Some((20, b"xy".to_vec()))));
        assert_eq!(r.part(1, b"cd", true, &pool), Ok(Some((10, b"abcd".to_vec()))));
        assert_eq!(r.part(9, b"z", true, &pool), Err(ReassemblyError::UnknownSession(9)));
        assert!(matches!(r.begin(4, 101, 0), Err(ReassemblyError::TooLarge { .. })));
        r.begin(5, 2, 0).unwrap();
        assert_eq!(r.begin(5, 2, 0), Err(ReassemblyError::DuplicateSession(5)));
        r.begin(6, 2, 0).unwrap();
        assert!(matches!(r.part(6, b"abc", false, &pool), Err(ReassemblyError::Overflow { .. })));
        r.begin(7, 3, 0).unwrap();
        assert!(matches!(r.part(7, b"ab", true, &pool), Err(ReassemblyError::SizeMismatch { .. })));
        // The declared totals in flight are bounded together, not only one by one.
        let mut r: Reasm<u8> = Reasm::new(100, 10);
        r.begin(1, 60, 0).unwrap();
        assert!(matches!(r.begin(2, 60, 0), Err(ReassemblyError::TooLarge { .. })));
        r.begin(3, 40, 0).unwrap();
        assert!(matches!(r.part(1, &[0; 61], false, &pool), Err(ReassemblyError::Overflow { .. })));
        r.begin(4, 60, 0).unwrap();
    }
}
