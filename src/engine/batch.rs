//! Batch scopes: writes deferred to the end of a scope, so that every frame queued for a
//! link inside it leaves in one write (the I/O thread always runs in one; hosts open their
//! own with [`batch`] and [`batch_deferred`]).

use super::conn::Conn;
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    static BATCH: RefCell<Option<Vec<Arc<Conn>>>> = const { RefCell::new(None) };
}

/// Runs `f` with socket writes deferred: every link written to inside is flushed once, at
/// the end. Nested scopes join the outermost one.
pub fn batch<R>(f: impl FnOnce() -> R) -> R {
    let outer = BATCH.with(|b| {
        let mut b = b.borrow_mut();
        if b.is_some() {
            false
        } else {
            *b = Some(Vec::new());
            true
        }
    });
    if !outer {
        return f();
    }
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            flush_batch();
        }
    }
    let _g = Guard;
    f()
}

/// Links written to inside a [`batch_deferred`] scope and not flushed yet. Flushing may
/// happen on any thread; dropping flushes too (so nothing stays unwritten).
#[derive(Default)]
pub struct Deferred(Vec<Arc<Conn>>);

impl Deferred {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds the links of `other` (each link once).
    pub fn merge(&mut self, mut other: Deferred) {
        for c in other.0.drain(..) {
            if !self.0.iter().any(|x| Arc::ptr_eq(x, &c)) {
                self.0.push(c);
            }
        }
    }

    /// Writes what the links have queued.
    pub fn flush(mut self) {
        flush_list(std::mem::take(&mut self.0));
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        flush_list(std::mem::take(&mut self.0));
    }
}

fn flush_list(list: Vec<Arc<Conn>>) {
    for c in list {
        c.st.lock().dirty = false;
        c.flush_or_report();
    }
}

/// As [`batch`], but the links written to are returned instead of flushed: the caller
/// flushes them later (e.g. after more requests joined them), from any thread. Inside an
/// outer scope, the outer scope flushes and the result is empty.
pub fn batch_deferred<R>(f: impl FnOnce() -> R) -> (R, Deferred) {
    if batching() {
        return (f(), Deferred::default());
    }
    BATCH.with(|b| *b.borrow_mut() = Some(Vec::new()));
    struct Guard {
        done: bool,
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            // On a panic inside `f`: end the scope and write what it queued.
            if !self.done {
                flush_batch();
            }
        }
    }
    let mut g = Guard { done: false };
    let r = f();
    g.done = true;
    let list = BATCH.with(|b| b.borrow_mut().take()).unwrap_or_default();
    (r, Deferred(list))
}

/// Flushes the links written to in the current batch scope and ends the scope.
fn flush_batch() {
    let list = BATCH.with(|b| b.borrow_mut().take()).unwrap_or_default();
    for c in list {
        c.st.lock().dirty = false;
        c.flush_or_report();
    }
}

/// Inside a [`batch`] scope: writes what the scope has deferred so far and keeps the
/// scope open. The I/O thread calls it between two full reads of a long burst, so that
/// answers stream out while the rest of the burst is read (without it, a peer that sends
/// many large requests at once gets no answer until all of them are read, and the two
/// directions of the link take turns instead of overlapping).
pub(crate) fn flush_batch_early() {
    let list = BATCH.with(|b| b.borrow_mut().as_mut().map(std::mem::take)).unwrap_or_default();
    for c in list {
        c.st.lock().dirty = false;
        c.flush_or_report();
    }
}

/// True inside a [`batch`] scope on this thread.
pub(crate) fn batching() -> bool {
    BATCH.with(|b| b.borrow().is_some())
}

/// Inside a batch scope on this thread: adds `conn` to the scope's list (once: `dirty`
/// marks it) and returns true, so the scope writes it at its end. Outside one: false.
pub(super) fn defer(conn: &Arc<Conn>, dirty: &mut bool) -> bool {
    BATCH.with(|b| match b.borrow_mut().as_mut() {
        Some(list) => {
            if !*dirty {
                *dirty = true;
                list.push(conn.clone());
            }
            true
        }
        None => false,
    })
}
