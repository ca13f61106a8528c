//! A host callback held by a node (link events, log lines), and how many calls of it are
//! running, so that replacing it can wait until the old one no longer runs (the host may
//! then free its `ud`).

use parking_lot::{Condvar, Mutex};
use std::cell::Cell;

/// One callback slot. `F` is the C function pointer type; `ud` is kept as a `usize` (the
/// library never dereferences it, it only hands it back).
pub(crate) struct Slot<F: Copy> {
    st: Mutex<State<F>>,
    idle: Condvar,
}

struct State<F> {
    cb: Option<(F, usize)>,
    running: usize,
}

impl<F: Copy> Default for Slot<F> {
    fn default() -> Self {
        Slot { st: Mutex::new(State { cb: None, running: 0 }), idle: Condvar::new() }
    }
}

thread_local! {
    /// The token of the node whose callback runs on this thread right now (0: none).
    static IN_CB: Cell<usize> = const { Cell::new(0) };
}

/// A running call: counted until dropped.
pub(crate) struct Running<'a, F: Copy> {
    slot: &'a Slot<F>,
    outer: usize,
}

impl<F: Copy> Drop for Running<'_, F> {
    fn drop(&mut self) {
        IN_CB.with(|c| c.set(self.outer));
        let mut st = self.slot.st.lock();
        st.running -= 1;
        if st.running == 0 {
            self.slot.idle.notify_all();
        }
    }
}

impl<F: Copy> Slot<F> {
    /// The callback and its `ud`, counted as running (for node `token`) until the returned
    /// guard drops; `None` when no callback is set.
    pub fn enter(&self, token: usize) -> Option<(F, usize, Running<'_, F>)> {
        let (cb, ud) = {
            let mut st = self.st.lock();
            let c = st.cb?;
            st.running += 1;
            c
        };
        let outer = IN_CB.with(|c| c.replace(token));
        Some((cb, ud, Running { slot: self, outer }))
    }

    /// Replaces the callback. Unless called from inside a callback of this node, waits until
    /// no call of the old one is running on any thread.
    pub fn set(&self, token: usize, cb: Option<(F, usize)>) {
        let mut st = self.st.lock();
        st.cb = cb;
        if IN_CB.with(|c| c.get()) == token {
            return;
        }
        while st.running > 0 {
            self.idle.wait(&mut st);
        }
    }
}
