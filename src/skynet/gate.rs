//! [`Gate`]: something other threads may use until `skcluster_release` takes it away (the
//! skynet context, the instance).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::LocalKey;

thread_local! {
    /// How many uses of each [`Gate`] this thread is inside.
    pub(super) static CTX_DEPTH: Cell<usize> = const { Cell::new(0) };
    pub(super) static INST_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Something other threads may use until `skcluster_release` takes it away (the skynet
/// context, the instance): uses are counted, and [`Gate::close`] returns once none runs
/// on another thread. A use on the closing thread itself (skynet entered the release from
/// inside one) is not waited for: it is further up this thread's stack.
pub(super) struct Gate {
    users: AtomicUsize,
    closed: AtomicBool,
    depth: &'static LocalKey<Cell<usize>>,
}

impl Gate {
    pub(super) fn new(depth: &'static LocalKey<Cell<usize>>) -> Gate {
        Gate { users: AtomicUsize::new(0), closed: AtomicBool::new(false), depth }
    }

    /// Runs `f` unless the gate is closed.
    pub(super) fn run<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        struct Leave<'a>(&'a Gate);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.depth.with(|d| d.set(d.get() - 1));
                self.0.users.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // SeqCst on both sides: either this use sees `closed`, or `close` sees the use.
        self.users.fetch_add(1, Ordering::SeqCst);
        self.depth.with(|d| d.set(d.get() + 1));
        let _leave = Leave(self);
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        Some(f())
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mine = self.depth.with(|d| d.get());
        while self.users.load(Ordering::SeqCst) > mine {
            std::thread::yield_now();
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::AssertUnwindSafe;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn gate_close_waits_for_uses_on_other_threads() {
        let gate = Arc::new(Gate::new(&CTX_DEPTH));
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let finished = Arc::new(AtomicUsize::new(0));
        let user = {
            let (gate, finished) = (gate.clone(), finished.clone());
            std::thread::spawn(move || {
                gate.run(|| {
                    inside_tx.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(50));
                    finished.store(1, Ordering::SeqCst);
                })
            })
        };
        inside_rx.recv().unwrap();
        gate.close();
        // close returned: the use that had started is over
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        assert_eq!(user.join().unwrap(), Some(()));
        // and no use starts any more
        assert_eq!(gate.run(|| 7), None);
        assert!(gate.is_closed());
    }

    #[test]
    fn gate_closed_from_inside_a_use_on_the_same_thread_does_not_wait_for_itself() {
        let gate = Gate::new(&INST_DEPTH);
        // skynet re-entering the release from inside a use of the same thread
        let r = gate.run(|| {
            gate.close();
            "closed"
        });
        assert_eq!(r, Some("closed"));
        assert_eq!(gate.users.load(Ordering::SeqCst), 0);
        assert_eq!(gate.run(|| ()), None);
    }

    #[test]
    fn gate_use_that_panics_still_leaves() {
        let gate = Gate::new(&CTX_DEPTH);
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| gate.run(|| panic!("in a use"))));
        assert!(r.is_err());
        assert_eq!(gate.users.load(Ordering::SeqCst), 0);
        gate.close(); // would spin forever if the use were still counted
        assert_eq!(CTX_DEPTH.with(|d| d.get()), 0);
    }
}
