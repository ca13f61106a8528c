//! Per-session joining of multi-part messages: the one reassembler, the engine's read path
//! and the tests and benchmarks alike.
//!
//! Stock skynet writes the parts of a large message at low priority, so other sessions'
//! frames may arrive between a header and its parts, and parts of several messages may
//! interleave. Reassembly is therefore keyed by session, never by arrival order.
//!
//! Memory: nothing is reserved on [`Reassembler::begin`]; the first part takes a buffer of
//! the declared total from the caller's [`BufferSource`] (so a header alone costs no payload
//! memory, and the payload is copied once, from the parts into that buffer). What a peer can
//! make a link hold is bounded by the caps given to [`Reassembler::new`] (the sum of the
//! declared totals in flight, the number of messages in flight); what all links together
//! hold, by an optional shared [`ReassemblyBudget`].
//!
//! Protocol anomalies are handled as stock's clusteragent handles them, where stock keeps
//! the link: it joins parts into a Lua table keyed by session and checks the result only
//! when the last part arrives (`cluster.concat`). So a duplicate header, a part for a session
//! with no header, or parts that overflow the declared size spoil the message, and its last
//! part is answered `Invalid large req` ([`Part::Invalid`]); a lone last part for an unknown
//! session reaches the address lookup with no address and is answered `Invalid name`
//! ([`Part::Orphan`]). A spoiled message holds no payload memory. What stock does not bound
//! (sizes, number of messages) is a [`ReassemblyError`]: the caller closes the link.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Why a header or part was refused outright. The caller closes the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReassemblyError {
    /// A header declared more bytes than the per-link cap allows, counting the messages
    /// already in flight (`total` is their sum with this one).
    TooLarge { session: u32, total: u64, limit: usize },
    /// More messages are in flight than the configured limit allows.
    TooManyPending(usize),
}

impl fmt::Display for ReassemblyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReassemblyError::TooLarge { session, total, limit } => {
                write!(f, "multi-part message of session {session} declares {total} bytes, limit is {limit}")
            }
            ReassemblyError::TooManyPending(n) => {
                write!(f, "too many multi-part messages in flight (limit {n})")
            }
        }
    }
}

impl std::error::Error for ReassemblyError {}

/// Where message buffers come from (the engine's pool of large buffers, or plain `Vec`s).
pub trait BufferSource {
    /// An empty buffer with at least `cap` bytes of capacity.
    fn get(&self, cap: usize) -> Vec<u8>;
}

/// A [`BufferSource`] that allocates a new `Vec` each time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Heap;

impl BufferSource for Heap {
    #[inline]
    fn get(&self, cap: usize) -> Vec<u8> {
        Vec::with_capacity(cap)
    }
}

/// A bound shared by several reassemblers (e.g. a node-wide byte budget over all links) on
/// the sum of the totals their messages declare. Taking is all-or-nothing.
pub trait ReassemblyBudget {
    /// Takes `n` bytes if they fit.
    fn try_take(&self, n: usize) -> bool;
    /// Gives back `n` bytes taken before.
    fn give(&self, n: usize);
}

/// No shared bound: only the reassembler's own caps apply.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unbounded;

impl ReassemblyBudget for Unbounded {
    #[inline]
    fn try_take(&self, _: usize) -> bool {
        true
    }
    #[inline]
    fn give(&self, _: usize) {}
}

impl<T: ReassemblyBudget + ?Sized> ReassemblyBudget for Arc<T> {
    #[inline]
    fn try_take(&self, n: usize) -> bool {
        (**self).try_take(n)
    }
    #[inline]
    fn give(&self, n: usize) {
        (**self).give(n)
    }
}

/// What a header did.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// A message is being joined.
    Joining,
    /// The shared budget is full: refuse the message now (answer an error); its parts will
    /// be dropped.
    Refused,
    /// A header for a session already being joined: that message is spoiled, as in stock.
    Spoiled,
}

/// What a part did.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<M> {
    /// More parts to come.
    More,
    /// The whole message.
    Done(M, Vec<u8>),
    /// The last part of a spoiled message: answer `Invalid large req` (stock's text). The
    /// meta is there when a header was seen.
    Invalid(Option<M>),
    /// A last part with no header or earlier part: answer `Invalid name`.
    Orphan,
    /// The last part of a refused message: already answered, nothing to do.
    Dropped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Joining,
    /// Spoiled (stock would fail its concat): the last part is answered `Invalid large req`.
    Invalid,
    /// Refused because the shared budget was full (already answered): parts are dropped.
    Refused,
}

struct Partial<M> {
    meta: Option<M>,
    /// The declared total, counted in `declared` and taken from the budget; 0 once spoiled
    /// or refused.
    total: usize,
    data: Vec<u8>,
    state: State,
    started: Instant,
}

/// Joins multi-part messages per session. `M` is whatever the caller needs to remember
/// from the header (address, push flag, trace tag...); `B` bounds the declared totals
/// together with other reassemblers (dropping the reassembler gives its share back).
pub struct Reassembler<M, B: ReassemblyBudget = Unbounded> {
    pending: HashMap<u32, Partial<M>>,
    max_total: usize,
    max_pending: usize,
    /// Sum of the declared totals being joined: bounded by `max_total` too, so that a peer
    /// cannot make one link hold `max_pending` buffers of `max_total` bytes each.
    declared: usize,
    budget: B,
}

impl<M, B: ReassemblyBudget> Drop for Reassembler<M, B> {
    fn drop(&mut self) {
        self.budget.give(self.declared);
    }
}

impl<M> Reassembler<M> {
    /// `max_total`: most bytes the messages in flight may declare together (so also the
    /// largest message); `max_pending`: most messages in flight at once.
    pub fn new(max_total: usize, max_pending: usize) -> Self {
        Self::with_budget(max_total, max_pending, Unbounded)
    }
}

impl<M, B: ReassemblyBudget> Reassembler<M, B> {
    /// As [`Reassembler::new`], the declared totals also taken from `budget`.
    pub fn with_budget(max_total: usize, max_pending: usize, budget: B) -> Self {
        Reassembler { pending: HashMap::new(), max_total, max_pending, declared: 0, budget }
    }

    /// Messages currently held (being joined, spoiled or refused).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Sum of the totals declared by the messages being joined.
    pub fn declared(&self) -> usize {
        self.declared
    }

    fn insert(&mut self, session: u32, p: Partial<M>) -> Result<(), ReassemblyError> {
        if self.pending.len() >= self.max_pending {
            return Err(ReassemblyError::TooManyPending(self.max_pending));
        }
        self.pending.insert(session, p);
        Ok(())
    }

    /// Starts a message of `total` bytes for `session`.
    pub fn begin(&mut self, session: u32, total: u32, meta: M) -> Result<Begin, ReassemblyError> {
        if self.pending.contains_key(&session) {
            self.spoil(session);
            return Ok(Begin::Spoiled);
        }
        let total = total as usize;
        let sum = self.declared.saturating_add(total);
        if total > self.max_total || sum > self.max_total {
            return Err(ReassemblyError::TooLarge { session, total: sum as u64, limit: self.max_total });
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
            if p.state == State::Joining {
                let t = std::mem::take(&mut p.total);
                p.data = Vec::new();
                p.state = State::Invalid;
                self.declared -= t;
                self.budget.give(t);
            }
        }
    }

    /// The session and start of the oldest message held (for a timeout on slow messages).
    pub fn oldest(&self) -> Option<(u32, Instant)> {
        self.pending.iter().map(|(s, p)| (*s, p.started)).min_by_key(|(_, t)| *t)
    }

    /// For a part of `len` bytes (`last`: the final one) that is read straight from the
    /// socket into the message's buffer: the buffer (with at least `total` bytes of
    /// capacity, taken from `source` at the first part) and the declared total, or `None`
    /// when the part would not be joined (the normal path, [`Reassembler::part`], then
    /// reports it when the frame is complete). `len == 0` asks for the buffer between two
    /// parts: `None` before the first part, so that a header alone still costs no payload
    /// memory.
    pub fn direct(
        &mut self,
        session: u32,
        len: usize,
        last: bool,
        source: &impl BufferSource,
    ) -> Option<(&mut Vec<u8>, usize)> {
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
            p.data = source.get(p.total);
        }
        Some((&mut p.data, p.total))
    }

    /// The buffer and declared total of a message being joined.
    pub fn buf(&mut self, session: u32) -> Option<(&mut Vec<u8>, usize)> {
        self.pending.get_mut(&session).filter(|p| p.state == State::Joining).map(|p| (&mut p.data, p.total))
    }

    /// Removes a message whose buffer holds its whole declared size (filled through
    /// [`Reassembler::direct`] / [`Reassembler::buf`]).
    pub fn take_full(&mut self, session: u32) -> Option<(M, Vec<u8>)> {
        match self.pending.get(&session) {
            Some(p) if p.state == State::Joining && p.data.len() == p.total => {
                self.remove(session).and_then(|p| Some((p.meta?, p.data)))
            }
            _ => None,
        }
    }

    /// Adds a part; the whole message after the last one. The first part takes a buffer of
    /// the declared size from `source` (so a header alone costs no payload memory).
    pub fn part(
        &mut self,
        session: u32,
        chunk: &[u8],
        last: bool,
        source: &impl BufferSource,
    ) -> Result<Part<M>, ReassemblyError> {
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
            p.data = source.get(total);
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
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// A shared budget as the engine's: a limit on a sum, all-or-nothing.
    struct Budget {
        used: AtomicUsize,
        limit: usize,
    }

    impl Budget {
        fn new(limit: usize) -> Arc<Budget> {
            Arc::new(Budget { used: AtomicUsize::new(0), limit })
        }
        fn used(&self) -> usize {
            self.used.load(Relaxed)
        }
    }

    impl ReassemblyBudget for Budget {
        fn try_take(&self, n: usize) -> bool {
            self.used.fetch_update(Relaxed, Relaxed, |u| u.checked_add(n).filter(|&t| t <= self.limit)).is_ok()
        }
        fn give(&self, n: usize) {
            let prev = self.used.fetch_sub(n, Relaxed);
            assert!(prev >= n, "budget given back more than taken");
        }
    }

    fn reasm(max_total: usize, max_pending: usize, budget: usize) -> (Reassembler<u8, Arc<Budget>>, Arc<Budget>) {
        let b = Budget::new(budget);
        (Reassembler::with_budget(max_total, max_pending, b.clone()), b)
    }

    #[test]
    fn joins_interleaved_and_bounds_per_link() {
        let (mut r, _) = reasm(100, 2, 1 << 20);
        assert_eq!(r.begin(1, 4, 10), Ok(Begin::Joining));
        assert_eq!(r.begin(2, 2, 20), Ok(Begin::Joining));
        assert_eq!(r.begin(3, 1, 30), Err(ReassemblyError::TooManyPending(2)));
        assert_eq!(r.part(1, b"ab", false, &Heap), Ok(Part::More));
        assert_eq!(r.part(2, b"xy", true, &Heap), Ok(Part::Done(20, b"xy".to_vec())));
        assert_eq!(r.part(1, b"cd", true, &Heap), Ok(Part::Done(10, b"abcd".to_vec())));
        assert!(matches!(r.begin(4, 101, 0), Err(ReassemblyError::TooLarge { .. })));
        // The declared totals in flight are bounded together, not only one by one.
        let (mut r, _) = reasm(100, 10, 1 << 20);
        r.begin(1, 60, 0).unwrap();
        assert_eq!(r.begin(2, 60, 0), Err(ReassemblyError::TooLarge { session: 2, total: 120, limit: 100 }));
        r.begin(3, 40, 0).unwrap();
        assert_eq!(r.declared(), 100);
    }

    #[test]
    fn anomalies_are_answered_as_stock_answers_them() {
        let (mut r, b) = reasm(100, 10, 1 << 20);
        // A lone last part: no header, no earlier part.
        assert_eq!(r.part(9, b"z", true, &Heap), Ok(Part::Orphan));
        // A part with no header, then the last one.
        assert_eq!(r.part(8, b"z", false, &Heap), Ok(Part::More));
        assert_eq!(r.part(8, b"z", true, &Heap), Ok(Part::Invalid(None)));
        // A duplicate header spoils the message (and frees what it held).
        r.begin(5, 4, 1).unwrap();
        assert_eq!(r.part(5, b"ab", false, &Heap), Ok(Part::More));
        assert_eq!(r.begin(5, 4, 2), Ok(Begin::Spoiled));
        assert_eq!(b.used(), 0);
        assert_eq!(r.part(5, b"cd", true, &Heap), Ok(Part::Invalid(Some(1))));
        // Overflow before the last part, and a last part that is too long or too short.
        r.begin(6, 2, 6).unwrap();
        assert_eq!(r.part(6, b"abc", false, &Heap), Ok(Part::More));
        assert_eq!(r.part(6, b"d", true, &Heap), Ok(Part::Invalid(Some(6))));
        r.begin(7, 3, 7).unwrap();
        assert_eq!(r.part(7, b"ab", true, &Heap), Ok(Part::Invalid(Some(7))));
        r.begin(7, 3, 7).unwrap();
        assert_eq!(r.part(7, b"abcd", true, &Heap), Ok(Part::Invalid(Some(7))));
        assert_eq!(b.used(), 0);
        assert_eq!(r.pending(), 0);
        assert_eq!(r.declared(), 0);
    }

    #[test]
    fn shared_budget_refuses_the_message_that_asks_for_more() {
        let b = Budget::new(100);
        let mut one: Reassembler<u8, _> = Reassembler::with_budget(100, 10, b.clone());
        let mut two: Reassembler<u8, _> = Reassembler::with_budget(100, 10, b.clone());
        assert_eq!(one.begin(1, 80, 0), Ok(Begin::Joining));
        assert_eq!(two.begin(1, 30, 0), Ok(Begin::Refused));
        assert_eq!(two.part(1, &[0; 30], true, &Heap), Ok(Part::Dropped));
        assert_eq!(two.begin(2, 20, 0), Ok(Begin::Joining));
        assert_eq!(b.used(), 100);
        drop(one);
        assert_eq!(b.used(), 20, "a reassembler that goes away gives its share back");
        assert_eq!(two.part(2, &[1; 20], true, &Heap), Ok(Part::Done(0, vec![1; 20])));
        assert_eq!(b.used(), 0);
        // A header refused for the count gives back what it took.
        let mut three: Reassembler<u8, _> = Reassembler::with_budget(100, 1, b.clone());
        three.begin(1, 10, 0).unwrap();
        assert_eq!(three.begin(2, 10, 0), Err(ReassemblyError::TooManyPending(1)));
        assert_eq!(b.used(), 10);
    }

    #[test]
    fn direct_reads_fill_the_buffer_in_place() {
        let mut r: Reassembler<u8> = Reassembler::new(100, 4);
        r.begin(1, 10, 7).unwrap();
        assert!(r.direct(1, 0, false, &Heap).is_none(), "a header alone holds no buffer");
        assert!(r.direct(1, 11, true, &Heap).is_none(), "more than declared");
        assert!(r.direct(1, 9, true, &Heap).is_none(), "a last part short of the total");
        assert!(r.direct(1, 10, false, &Heap).is_none(), "a part that fills it but is not the last");
        assert!(r.direct(2, 4, false, &Heap).is_none(), "no such message");
        let (buf, total) = r.direct(1, 4, false, &Heap).unwrap();
        assert_eq!(total, 10);
        assert!(buf.capacity() >= 10);
        buf.extend_from_slice(b"abcd");
        assert!(r.take_full(1).is_none(), "not full yet");
        assert_eq!(r.direct(1, 0, false, &Heap).map(|(b, t)| (b.len(), t)), Some((4, 10)));
        r.buf(1).unwrap().0.extend_from_slice(b"efghij");
        assert_eq!(r.take_full(1), Some((7, b"abcdefghij".to_vec())));
        assert_eq!((r.pending(), r.declared()), (0, 0));
        // A spoiled message offers no buffer.
        r.begin(3, 4, 0).unwrap();
        assert_eq!(r.begin(3, 4, 0), Ok(Begin::Spoiled));
        assert!(r.direct(3, 4, true, &Heap).is_none() && r.buf(3).is_none());
    }
}
