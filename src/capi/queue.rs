//! `skc_queue`: a completion queue with an eventfd, so a host event loop (epoll, libuv, ...)
//! can wait for call completions next to its own file descriptors.

use super::error::{guard, skc_status, Error, Res};
use super::handle::{self, insert, lookup, malloc_copy, out, remove, Obj};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::os::raw::c_int;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A completion queue. Opaque: create with `skc_queue_new`, free with `skc_queue_free`.
pub struct skc_queue {
    _private: [u8; 0],
}

/// One finished call, as `skc_queue_pop` returns it.
#[repr(C)]
pub struct skc_completion {
    /// The token given to `skc_call_queued`.
    pub token: u64,
    /// `SKC_OK`, or why the call failed.
    pub status: skc_status,
    /// `SKC_OK`: the answer (skynet.pack bytes). Otherwise the error text, NUL-terminated (the
    /// NUL is not counted in `len`). Never NULL. Ownership: the caller owns it and frees it
    /// with `skc_free`.
    pub data: *mut u8,
    /// Bytes at `data`.
    pub len: usize,
}

pub(crate) struct Done {
    pub token: u64,
    pub status: skc_status,
    pub data: Vec<u8>,
}

pub(crate) struct Queue {
    items: Mutex<VecDeque<Done>>,
    cv: Condvar,
    fd: c_int,
}

impl Queue {
    fn new() -> Res<Queue> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::new(skc_status::SKC_ERR_IO, format!("eventfd: {}", std::io::Error::last_os_error())));
        }
        Ok(Queue { items: Mutex::new(VecDeque::new()), cv: Condvar::new(), fd })
    }

    /// Adds a completion; the fd becomes readable when the queue goes non-empty.
    pub fn push(&self, d: Done) {
        let mut q = self.items.lock();
        if q.is_empty() {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our own eventfd; a full counter
            // (impossible here: we write at most once per empty->non-empty) would just fail.
            unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
        }
        q.push_back(d);
        drop(q);
        self.cv.notify_one();
    }

    /// Takes the oldest completion, waiting up to `wait` (`None`: do not wait).
    fn pop(&self, wait: Option<Option<Instant>>) -> Option<Done> {
        let mut q = self.items.lock();
        loop {
            if let Some(d) = q.pop_front() {
                if q.is_empty() {
                    let mut v: u64 = 0;
                    // SAFETY: reads 8 bytes into a valid u64 from our own non-blocking eventfd,
                    // resetting its counter (EAGAIN if already zero, which is fine).
                    unsafe { libc::read(self.fd, (&mut v as *mut u64).cast(), 8) };
                }
                return Some(d);
            }
            match wait {
                None => return None,
                Some(None) => self.cv.wait(&mut q),
                Some(Some(d)) => {
                    if self.cv.wait_until(&mut q, d).timed_out() && q.is_empty() {
                        return None;
                    }
                }
            }
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: we own the fd and close it exactly once.
        unsafe { libc::close(self.fd) };
    }
}

fn qtoken(q: *const skc_queue) -> usize {
    q as usize
}

pub(crate) fn get(q: *const skc_queue) -> Res<Arc<Queue>> {
    lookup("skc_queue", qtoken(q), |o| match o {
        Obj::Queue(q) => Some(q.clone()),
        _ => None,
    })
}

/// Creates a completion queue for `skc_call_queued`. On failure `*out` is set to NULL.
///
/// Ownership: the caller owns the queue and frees it with `skc_queue_free`.
/// Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_queue_new(out_q: *mut *mut skc_queue) -> skc_status {
    handle::clear(out_q);
    guard(|| {
        if out_q.is_null() {
            return Err(Error::null("out"));
        }
        let q = Arc::new(Queue::new()?);
        let t = insert(Obj::Queue(q));
        out(out_q, "out", t as *mut skc_queue)
    })
}

/// Writes the queue's file descriptor to `*fd`: an eventfd that is readable while the queue
/// holds completions (wait for `POLLIN`/`EPOLLIN`, then call `skc_queue_pop` until it returns
/// `SKC_ERR_AGAIN`). Do not read or close it yourself.
///
/// Ownership: the fd belongs to the queue and is closed when the queue is freed and its last
/// pending call has ended. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_queue_fd(q: *mut skc_queue, fd: *mut c_int) -> skc_status {
    guard(|| {
        let q = get(q)?;
        out(fd, "fd", q.fd)
    })
}

fn deliver(d: Done, c: *mut skc_completion, _size: usize) -> Res<()> {
    let data = if d.status == skc_status::SKC_OK {
        malloc_copy(&d.data)?
    } else {
        let mut t = d.data.clone();
        t.push(0);
        malloc_copy(&t)?
    };
    // SAFETY: `c` was checked non-NULL and `size` >= size_of::<skc_completion>() by the caller.
    unsafe { c.write(skc_completion { token: d.token, status: d.status, data, len: d.data.len() }) };
    Ok(())
}

fn check_out(c: *mut skc_completion, size: usize) -> Res<()> {
    if c.is_null() {
        return Err(Error::null("out"));
    }
    if size < std::mem::size_of::<skc_completion>() {
        return Err(Error::new(
            skc_status::SKC_ERR_SIZE,
            format!(
                "out_size {size} is smaller than sizeof(skc_completion) = {}",
                std::mem::size_of::<skc_completion>()
            ),
        ));
    }
    Ok(())
}

/// Takes the oldest completion without waiting: `SKC_OK` and `*out` filled, or
/// `SKC_ERR_AGAIN` when the queue is empty. `out_size` must be `sizeof(skc_completion)`.
///
/// Ownership: `out->data` is the caller's, freed with `skc_free`.
/// Thread-safety: thread-safe; each completion is returned to exactly one caller.
#[no_mangle]
pub extern "C" fn skc_queue_pop(q: *mut skc_queue, out: *mut skc_completion, out_size: usize) -> skc_status {
    guard(|| {
        let q = get(q)?;
        check_out(out, out_size)?;
        match q.pop(None) {
            Some(d) => deliver(d, out, out_size),
            None => Err(Error::new(skc_status::SKC_ERR_AGAIN, "the queue is empty")),
        }
    })
}

/// Like `skc_queue_pop`, but waits up to `timeout_ms` (0: forever) for a completion;
/// `SKC_ERR_TIMEOUT` when none came.
///
/// Ownership: as `skc_queue_pop`. Thread-safety: thread-safe. Blocks: never call it from a
/// node callback while the completion you wait for needs that node's thread.
#[no_mangle]
pub extern "C" fn skc_queue_wait(
    q: *mut skc_queue,
    timeout_ms: u32,
    out: *mut skc_completion,
    out_size: usize,
) -> skc_status {
    guard(|| {
        let q = get(q)?;
        check_out(out, out_size)?;
        let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        match q.pop(Some(deadline)) {
            Some(d) => deliver(d, out, out_size),
            None => Err(Error::new(skc_status::SKC_ERR_TIMEOUT, "no completion within the timeout")),
        }
    })
}

/// Frees a queue. Completions still in it are discarded (their data freed); calls still
/// pending on it complete into nothing (the queue's memory and fd are released when the
/// last of them ends).
///
/// Ownership: takes back the queue; the handle is invalid afterwards (`SKC_ERR_HANDLE` on
/// every later use, including a second free). Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_queue_free(q: *mut skc_queue) -> skc_status {
    guard(|| {
        let q = remove("skc_queue", qtoken(q), |o| match o {
            Obj::Queue(q) => Ok(q),
            o => Err(o),
        })?;
        q.items.lock().clear();
        Ok(())
    })
}
