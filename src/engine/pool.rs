//! A small per-node pool of large byte buffers (send chunks, reassembled messages).
//!
//! Why: a steady stream of 16 KiB - 4 MiB messages would otherwise malloc and free one
//! buffer per message. With glibc, freeing them trims the heap (or unmaps them) and the
//! next allocation faults its pages in again; measured, that doubled the CPU per 64 KiB
//! call. The pool is per node (not per link, so idle links cost nothing), shared by all
//! threads, and kept per power-of-two size class so that buffers of one size cannot crowd
//! out another: each class holds at most ~4 MiB (2 to 64 buffers), ~35 MiB in all.

use parking_lot::Mutex;

/// Buffers below this are left to malloc (cheap and never trimmed one by one).
const MIN_POOLED: usize = 16 << 10;
/// Buffers above this are not kept.
const MAX_POOLED: usize = 4 << 20;
const MIN_SHIFT: u32 = MIN_POOLED.trailing_zeros();
const CLASSES: usize = (MAX_POOLED.trailing_zeros() - MIN_SHIFT + 1) as usize;
/// Bytes one class may hold (at least 2 buffers, at most 64).
const CLASS_BYTES: usize = 4 << 20;

pub(crate) struct Pool {
    classes: [Mutex<Vec<Vec<u8>>>; CLASSES],
}

impl Default for Pool {
    fn default() -> Self {
        Pool { classes: std::array::from_fn(|_| Mutex::new(Vec::new())) }
    }
}

/// The class whose buffers all have at least `2^(k + MIN_SHIFT)` bytes: floor(log2(cap)).
fn class_of_capacity(cap: usize) -> usize {
    (usize::BITS - 1 - cap.leading_zeros() - MIN_SHIFT) as usize
}

fn class_limit(k: usize) -> usize {
    (CLASS_BYTES >> (k as u32 + MIN_SHIFT)).clamp(2, 64)
}

impl Pool {
    /// An empty buffer with at least `cap` bytes of capacity.
    pub fn get(&self, cap: usize) -> Vec<u8> {
        if (MIN_POOLED..=MAX_POOLED).contains(&cap) {
            let k = class_of_capacity(cap);
            // Class k holds capacities in [2^k, 2^(k+1)): some may be too small for `cap`;
            // every buffer of class k+1 fits.
            for class in [k, k + 1] {
                if class >= CLASSES {
                    break;
                }
                let mut c = self.classes[class].lock();
                if let Some(i) = c.iter().rposition(|b| b.capacity() >= cap) {
                    return c.swap_remove(i);
                }
            }
        }
        Vec::with_capacity(cap)
    }

    /// Gives a buffer back (or frees it when its class is full, or it is too small or big).
    pub fn put(&self, mut v: Vec<u8>) {
        let cap = v.capacity();
        if !(MIN_POOLED..MAX_POOLED * 2).contains(&cap) {
            return;
        }
        let k = class_of_capacity(cap).min(CLASSES - 1);
        v.clear();
        let mut c = self.classes[k].lock();
        if c.len() < class_limit(k) {
            c.push(v);
        }
    }
}

/// Reassembled messages take their buffers from the pool.
impl crate::wire::BufferSource for Pool {
    #[inline]
    fn get(&self, cap: usize) -> Vec<u8> {
        Pool::get(self, cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_serve_and_bound() {
        let p = Pool::default();
        assert_eq!(class_of_capacity(16 << 10), 0);
        assert_eq!(class_of_capacity((32 << 10) - 1), 0);
        assert_eq!(class_of_capacity(1 << 20), 6);
        // A 1 MiB buffer comes back for a 1 MiB request even with the 64 KiB class full.
        for _ in 0..200 {
            p.put(Vec::with_capacity(65 << 10));
        }
        assert_eq!(p.classes[class_of_capacity(65 << 10)].lock().len(), class_limit(2));
        let big = Vec::<u8>::with_capacity(1 << 20);
        let ptr = big.as_ptr();
        p.put(big);
        let again = p.get((1 << 20) - 100);
        assert_eq!(again.as_ptr(), ptr);
        assert!(p.get(70 << 10).capacity() >= 70 << 10);
        assert!(p.get(100).capacity() >= 100);
    }
}
