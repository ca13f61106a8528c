//! Socket options mio does not expose.

use super::config::Keepalive;
use std::os::fd::RawFd;

fn set(fd: RawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) {
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call; the
    // option value is a valid c_int whose size we pass.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Turns TCP keepalive on with the given timings (or leaves it off for `None`).
pub(crate) fn keepalive(fd: RawFd, ka: Option<Keepalive>) {
    let Some(ka) = ka else { return };
    set(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, ka.idle.as_secs().clamp(1, 32767) as libc::c_int);
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, ka.interval.as_secs().clamp(1, 32767) as libc::c_int);
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, ka.count.clamp(1, 127) as libc::c_int);
}

/// Reads an integer socket option (tests use it to check TCP_NODELAY / SO_KEEPALIVE).
pub fn get_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> Option<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes and `len` holds the size of `v`.
    let rc = unsafe { libc::getsockopt(fd, level, name, &mut v as *mut libc::c_int as *mut libc::c_void, &mut len) };
    (rc == 0).then_some(v)
}
