//! The decoder must not allocate ahead of the bytes it has: headers that declare huge strings or
//! arrays, nested as deep as allowed, may only cost a small bounded amount of memory before the
//! input runs out. Measured with a counting global allocator (this thread only).

use skynet_cluster::seri::{decode, DecodeError};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // try_with: the allocator can run while thread-locals are being torn down.
    let _ = ON.try_with(|on| {
        if on.get() {
            TOTAL.with(|t| t.set(t.get() + size));
            LARGEST.with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: forwards every call unchanged to the system allocator; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (total bytes requested, largest single request) while decoding `bytes`.
fn measure(bytes: &[u8]) -> (Result<usize, DecodeError>, usize, usize) {
    TOTAL.with(|t| t.set(0));
    LARGEST.with(|l| l.set(0));
    ON.with(|o| o.set(true));
    let r = decode(bytes).map(|v| v.len());
    ON.with(|o| o.set(false));
    (r, TOTAL.with(Cell::get), LARGEST.with(Cell::get))
}

#[test]
fn huge_declared_sizes_cost_nothing_up_front() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("u32 string length 4 GiB", vec![0x25, 0xff, 0xff, 0xff, 0xff, b'x']),
        ("u16 string length 64 KiB", vec![0x15, 0xff, 0xff, b'x']),
        ("array of 2^31-1", vec![0xfe, 0x22, 0xff, 0xff, 0xff, 0x7f, 0x02]),
        ("array of 2^31-1 via qword", vec![0xfe, 0x32, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]),
        ("33 nested arrays of 2^31-1 each", {
            let mut v = Vec::new();
            for _ in 0..33 {
                v.extend_from_slice(&[0xfe, 0x22, 0xff, 0xff, 0xff, 0x7f]);
            }
            v
        }),
    ];
    for (name, bytes) in cases {
        let (r, total, largest) = measure(&bytes);
        assert!(matches!(r, Err(DecodeError::Truncated { .. })), "{name}: {r:?}");
        // A few small vectors per nesting level, nothing proportional to the declared sizes.
        assert!(largest <= 64 * 1024, "{name}: largest allocation {largest} bytes");
        assert!(total <= 1024 * 1024, "{name}: {total} bytes allocated");
    }
}

#[test]
fn a_wide_array_header_over_real_data_reserves_a_bounded_amount() {
    // Declares 2^31-1 values and really has 10 000 nils, then ends.
    let mut bytes = vec![0xfe, 0x22, 0xff, 0xff, 0xff, 0x7f];
    bytes.extend(std::iter::repeat(0u8).take(10_000));
    let (r, _, largest) = measure(&bytes);
    assert!(matches!(r, Err(DecodeError::Truncated { .. })));
    // The array grows with the values actually read (10 000 * 56-byte values, doubled).
    assert!(largest <= 2 * 16_384 * 64, "largest allocation {largest} bytes");
}
