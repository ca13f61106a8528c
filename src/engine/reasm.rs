//! Per-session joining of multi-part messages, with buffers from the node's [`Pool`] and
//! the declared sizes charged to the node's reassembly [`Budget`].
//!
//! Protocol anomalies are handled as stock's clusteragent handles them, where stock keeps
//! the link: it joins parts into a Lua table keyed by session and checks the result only
//! when the last part arrives (`cluster.concat`). So a duplicate header, a part for a session
//! with no header, or parts that overflow the declared size spoil the message, and its last
//! part is answered `Invalid large req`; a lone last part for an unknown session reaches the
//! address lookup with no address and is answered `Invalid name`. A spoiled message holds
//! no payload memory. What stock does not bound (sizes, number of messages) closes the link.

use super::budget::Budget;
use super::pool::Pool;
use crate::wire::ReassemblyError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Joining,
    /// Spoiled (stock would fail its concat): the last part is answered `Invalid large req`.
    Invalid,
    /// Refused because the node's budget was full (already answered): parts are dropped.
    Refused,
}

struct Partial<M> {
    meta: Option<M>,
    total: usize,
    data: Vec<u8>,
    state: State,
    started: Instant,
}

/// What a header did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Begin {
    /// A message is being joined.
    Joining,
    /// The node's reassembly budget is full: refuse the message now (answer an error); its
    /// parts will be dropped.
    Refused,
    /// A header for a session already being joined: that message is spoiled, as in stock.
    Spoiled,
}

/// What a part did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Part<M> {
    /// More parts to come.
    More,
    /// The whole message.
    Done(M, Vec<u8>),
    /// The last part of a spoiled message: answer `Invalid large req` (stock's text). The
    /// meta is there when a header was seen.
    Invalid(Option<M>),
    /// The last part of a last part with no header or earlier part: answer `Invalid name`.
    Orphan,
    /// The last part of a refused message: already answered, nothing to do.
    Dropped,
}

pub(crate) struct Reasm<M> {
    pending: HashMap<u32, Partial<M>>,
    max_total: usize,
    max_pending: usize,
    /// Sum of the declared totals being joined on this link: bounded by `max_total` too, so
    /// that a peer cannot make one link hold `max_pending` buffers of `max_total` bytes each.
    declared: usize,
    /// The node-wide bound on the same sum over every link.
    budget: Arc<Budget>,
}

impl<M> Drop for Reasm<M> {
    fn drop(&mut self) {
        self.budget.give(self.declared);
    }
}

impl<M> Reasm<M> {
    pub fn new(max_total: usize, max_pending: usize, budget: Arc<Budget>) -> Self {
        Reasm { pending: HashMap::new(), max_total, max_pending, declared: 0, budget }
    }

    fn insert(&mut self, session: u32, p: Partial<M>) -> Result<(), ReassemblyError> {
        if self.pending.len() >= self.max_pending {
            return Err(ReassemblyError::TooManyPending(self.max_pending));
        }
        self.pending.insert(session, p);
        Ok(())
    }

    pub fn begin(&mut self, session: u32, total: u32, meta: M) -> Result<Begin, ReassemblyError> {
        if let Some(p) = self.pending.get_mut(&session) {
            if p.state == State::Joining {
                p.state = State::Invalid;
                let t = std::mem::take(&mut p.total);
                p.data = Vec::new();
                self.declared -= t;
                self.budget.give(t);
            }
            return Ok(Begin::Spoiled);
        }
        let total = total as usize;
        if total > self.max_total || self.declared + total > self.max_total {
            return Err(ReassemblyError::TooLarge {
                session,
                total: (self.declared + total) as u64,
                limit: self.max_total,
            });
        }
        let refused = !self.budget.try_take(total);
        let (state, total) = if refused { (State::Refused, 0) } else { (State::Joining, total) };
        let r =
            self.insert(session, Partial { meta: Some(meta), total, data: Vec::new(), state, started: Instant::now() });
        if r.is_err() {
            self.budget.give(total);
        }
        r?;
        self.declared += total;
        Ok(if refused { Begin::Refused } else { Begin::Joining })
    }

    fn remove(&mut self, session: u32) -> Option<Partial<M>> {
        let p = self.pending.remove(&session)?;
        self.declared -= p.total;
        self.budget.give(p.total);
        Some(p)
    }

    /// Spoils a message being joined (its buffer and budget are released).
    fn spoil(&mut self, session: u32) {
        if let Some(p) = self.pending.get_mut(&session) {
            let t = std::mem::take(&mut p.total);
            p.data = Vec::new();
            p.state = State::Invalid;
            self.declared -= t;
            self.budget.give(t);
        }
    }

    /// The session and start of the oldest message being joined (for `multi_timeout`).
    pub fn oldest(&self) -> Option<(u32, Instant)> {
        self.pending.iter().map(|(s, p)| (*s, p.started)).min_by_key(|(_, t)| *t)
    }

    /// For a part of `len` bytes (`last`: the final one) that is read straight from the
    /// socket into the message's buffer: the buffer (with at least `total` bytes of
    /// capacity) and the declared total, or `None` when the part would be refused (the
    /// normal path, [`Reasm::part`], then reports it when the frame is complete).
    /// `len == 0` asks for the buffer between two parts: `None` before the first part, so
    /// that a header alone still costs no payload memory.
    pub fn direct(&mut self, session: u32, len: usize, last: bool, pool: &Pool) -> Option<(&mut Vec<u8>, usize)> {
        let p = self.pending.get_mut(&session)?;
        if p.state != State::Joining {
            return None;
        }
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
        self.pending.get_mut(&session).filter(|p| p.state == State::Joining).map(|p| (&mut p.data, p.total))
    }

    /// Removes a message whose buffer holds its whole declared size.
    pub fn take_full(&mut self, session: u32) -> Option<(M, Vec<u8>)> {
        match self.pending.get(&session) {
            Some(p) if p.state == State::Joining && p.data.len() == p.total => {
                self.remove(session).and_then(|p| Some((p.meta?, p.data)))
            }
            _ => None,
        }
    }

    /// Adds a part; the whole message after the last one. The first part takes a buffer of
    /// the declared size from the pool (so a header alone costs no payload memory).
    pub fn part(&mut self, session: u32, chunk: &[u8], last: bool, pool: &Pool) -> Result<Part<M>, ReassemblyError> {
        let Some(p) = self.pending.get_mut(&session) else {
            if last {
                return Ok(Part::Orphan);
            }
            // Stock starts a table with no size for it: spoiled from the start.
            let p = Partial { meta: None, total: 0, data: Vec::new(), state: State::Invalid, started: Instant::now() };
            self.insert(session, p)?;
            return Ok(Part::More);
        };
        match p.state {
            State::Joining => {}
            State::Invalid | State::Refused if !last => return Ok(Part::More),
            State::Invalid => return Ok(Part::Invalid(self.remove(session).and_then(|p| p.meta))),
            State::Refused => {
                self.remove(session);
                return Ok(Part::Dropped);
            }
        }
        let total = p.total;
        let got = p.data.len() + chunk.len();
        if got > total || (last && got != total) {
            if last {
                return Ok(Part::Invalid(self.remove(session).and_then(|p| p.meta)));
            }
            self.spoil(session);
            return Ok(Part::More);
        }
        if p.data.capacity() == 0 {
            p.data = pool.get(total);
        }
        p.data.extend_from_slice(chunk);
        if !last {
            return Ok(Part::More);
        }
        let p = self.remove(session).expect("looked up above");
        Ok(match p.meta {
            Some(m) => Part::Done(m, p.data),
            None => Part::Invalid(None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasm(max_total: usize, max_pending: usize, budget: usize) -> (Reasm<u8>, Arc<Budget>) {
        let b = Arc::new(Budget::new(budget));
        (Reasm::new(max_total, max_pending, b.clone()), b)
    }

    #[test]
    fn joins_interleaved_and_bounds_per_link() {
        let pool = Pool::default();
        let (mut r, _) = reasm(100, 2, 1 << 20);
        assert_eq!(r.begin(1, 4, 10), Ok(Begin::Joining));
        assert_eq!(r.begin(2, 2, 20), Ok(Begin::Joining));
        assert_eq!(r.begin(3, 1, 30), Err(ReassemblyError::TooManyPending(2)));
        assert_eq!(r.part(1, b"ab", false, &pool), Ok(Part::More));
        assert_eq!(r.part(2, b"xy", true, &pool), Ok(Part::Done(20, b"xy".to_vec())));
        assert_eq!(r.part(1, b"cd", true, &pool), Ok(Part::Done(10, b"abcd".to_vec())));
        assert!(matches!(r.begin(4, 101, 0), Err(ReassemblyError::TooLarge { .. })));
        // The declared totals in flight are bounded together, not only one by one.
        let (mut r, _) = reasm(100, 10, 1 << 20);
        r.begin(1, 60, 0).unwrap();
        assert!(matches!(r.begin(2, 60, 0), Err(ReassemblyError::TooLarge { .. })));
        r.begin(3, 40, 0).unwrap();
    }

    #[test]
    fn anomalies_are_answered_as_stock_answers_them() {
        let pool = Pool::default();
        let (mut r, b) = reasm(100, 10, 1 << 20);
        // A lone last part: no header, no earlier part.
        assert_eq!(r.part(9, b"z", true, &pool), Ok(Part::Orphan));
        // A part with no header, then the last one.
        assert_eq!(r.part(8, b"z", false, &pool), Ok(Part::More));
        assert_eq!(r.part(8, b"z", true, &pool), Ok(Part::Invalid(None)));
        // A duplicate header spoils the message (and frees what it held).
        r.begin(5, 4, 1).unwrap();
        assert_eq!(r.part(5, b"ab", false, &pool), Ok(Part::More));
        assert_eq!(r.begin(5, 4, 2), Ok(Begin::Spoiled));
        assert_eq!(b.used(), 0);
        assert_eq!(r.part(5, b"cd", true, &pool), Ok(Part::Invalid(Some(1))));
        // Overflow before the last part, and a last part that is too long or too short.
        r.begin(6, 2, 6).unwrap();
        assert_eq!(r.part(6, b"abc", false, &pool), Ok(Part::More));
        assert_eq!(r.part(6, b"d", true, &pool), Ok(Part::Invalid(Some(6))));
        r.begin(7, 3, 7).unwrap();
        assert_eq!(r.part(7, b"ab", true, &pool), Ok(Part::Invalid(Some(7))));
        r.begin(7, 3, 7).unwrap();
        assert_eq!(r.part(7, b"abcd", true, &pool), Ok(Part::Invalid(Some(7))));
        assert_eq!(b.used(), 0);
        assert!(r.pending.is_empty());
    }

    #[test]
    fn node_budget_refuses_the_message_that_asks_for_more() {
        let pool = Pool::default();
        let b = Arc::new(Budget::new(100));
        let mut one: Reasm<u8> = Reasm::new(100, 10, b.clone());
        let mut two: Reasm<u8> = Reasm::new(100, 10, b.clone());
        assert_eq!(one.begin(1, 80, 0), Ok(Begin::Joining));
        assert_eq!(two.begin(1, 30, 0), Ok(Begin::Refused));
        assert_eq!(two.part(1, &[0; 30], true, &pool), Ok(Part::Dropped));
        assert_eq!(two.begin(2, 20, 0), Ok(Begin::Joining));
        assert_eq!(b.used(), 100);
        drop(one);
        assert_eq!(b.used(), 20, "a link that goes away gives its share back");
        assert_eq!(two.part(2, &[1; 20], true, &pool), Ok(Part::Done(0, vec![1; 20])));
        assert_eq!(b.used(), 0);
    }
}
