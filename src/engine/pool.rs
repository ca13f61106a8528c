//! A small per-node pool of large byte buffers (send chunks, reassembled messages).
//!
//! Why: a steady stream of 16 KiB - 1 MiB messages would otherwise malloc and free one
//! buffer per message. With glibc, freeing them trims the heap and the next allocation
//! faults its pages in again; measured, that doubled the CPU per 64 KiB call. The pool
//! keeps up to `MAX_HELD` bytes of such buffers per node (not per link, so idle links cost
//! nothing), shared by all threads.

use parking_lot::Mutex;

/// Buffers below this are left to malloc (cheap and never trimmed one by one).
const MIN_POOLED: usize = 16 << 10;
/// Buffers above this are not kept.
const MAX_POOLED: usize = 4 << 20;
/// Bytes the pool holds at most.
const MAX_HELD: usize = 32 << 20;
/// Buffers the pool holds at most (the lookup is a scan).
const MAX_COUNT: usize = 128;

#[derive(Default)]
pub(crate) struct Pool {
    inner: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

impl Pool {
    /// An empty buffer with at least `cap` bytes of capacity.
    pub fn get(&self, cap: usize) -> Vec<u8> {
        if (MIN_POOLED..=MAX_POOLED).contains(&cap) {
            let mut h = self.inner.lock();
            // The first that fits without wasting more than half of it.
            if let Some(i) = h.bufs.iter().position(|b| b.capacity() >= cap && b.capacity() / 2 <= cap) {
                let v = h.bufs.swap_remove(i);
                h.bytes -= v.capacity();
                return v;
            }
        }
        Vec::with_capacity(cap)
    }

    /// Gives a buffer back (or frees it when the pool is full or it is too small or big).
    pub fn put(&self, mut v: Vec<u8>) {
        let cap = v.capacity();
        if !(MIN_POOLED..=MAX_POOLED).contains(&cap) {
            return;
        }
        v.clear();
        let mut h = self.inner.lock();
        if h.bytes + cap > MAX_HELD || h.bufs.len() >= MAX_COUNT {
            return;
        }
        h.bytes += cap;
        h.bufs.push(v);
    }
}
