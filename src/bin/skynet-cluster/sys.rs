//! What the long-running subcommands (`serve`, `watch`) need from the OS: the descriptor
//! limit, signals taken synchronously on a thread of our own, and local-time timestamps.

use super::args::fmt_bytes;
use skynet_cluster::engine::Health;
use std::io;

/// The soft RLIMIT_NOFILE after [`raise_nofile`], and what happened.
pub struct NoFile {
    /// The soft limit now in force.
    pub soft: libc::rlim_t,
    /// The soft limit before, when it was raised.
    pub raised_from: Option<libc::rlim_t>,
    /// Why it could not be raised to the hard limit, when it could not.
    pub failed: Option<String>,
}

impl std::fmt::Display for NoFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fd limit {}", self.soft)?;
        if let Some(old) = self.raised_from {
            write!(f, " (raised from {old})")?;
        }
        if let Some(e) = &self.failed {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// Raises this process's soft limit on open descriptors to its hard limit (a node holds
/// one per link; the usual soft default of 1024 is below the engine's `max_links`). An
/// unlimited hard limit means the kernel's `fs.nr_open`, the most setrlimit accepts.
pub fn raise_nofile() -> NoFile {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `rl` is a valid, writable rlimit; getrlimit fills it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        let e = io::Error::last_os_error();
        return NoFile { soft: 0, raised_from: None, failed: Some(format!("getrlimit failed: {e}")) };
    }
    let old = rl.rlim_cur;
    let target = if rl.rlim_max == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<libc::rlim_t>().ok())
            .unwrap_or(1 << 20)
    } else {
        rl.rlim_max
    };
    if old >= target {
        return NoFile { soft: old, raised_from: None, failed: None };
    }
    let new = libc::rlimit { rlim_cur: target, rlim_max: rl.rlim_max };
    // SAFETY: `new` is a valid rlimit; setrlimit only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
        let e = io::Error::last_os_error();
        return NoFile { soft: old, raised_from: None, failed: Some(format!("cannot raise it to {target}: {e}")) };
    }
    NoFile { soft: target, raised_from: Some(old), failed: None }
}

/// A set of signals, blocked in the calling thread and every thread it starts afterwards
/// (the engine's I/O thread included), so that [`Signals::wait`] takes them synchronously
/// instead of a handler running at an arbitrary point.
#[derive(Clone, Copy)]
pub struct Signals {
    set: libc::sigset_t,
}

// SAFETY: a sigset_t is plain data (a bit array); nothing in it refers to a thread.
unsafe impl Send for Signals {}

impl Signals {
    /// Blocks `signals` in the calling thread. Call it before any thread is started.
    pub fn block(signals: &[libc::c_int]) -> io::Result<Signals> {
        // SAFETY: `set` is initialised by sigemptyset before use; pthread_sigmask reads it
        // and writes no old set (null).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(Signals { set })
        }
    }

    /// Waits for one of the signals and returns it.
    pub fn wait(&self) -> libc::c_int {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `self.set` is an initialised sigset; `sig` is a valid out pointer.
            let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
            if rc == 0 {
                return sig;
            }
        }
    }
}

/// The name of a signal we take (`SIGINT`...), for messages.
pub fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Local time now, to the millisecond: `2026-12-03 18:40:55.123`.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: `tm` is a valid, writable tm; localtime_r (thread-safe) fills it from `secs`.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return format!("{}.{:03}", now.as_secs(), now.subsec_millis());
        }
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis()
    )
}

/// [`Handle::health`](skynet_cluster::engine::Handle::health) as one line.
pub fn health_line(h: &Health) -> String {
    format!(
        "health: links {}/{}, reassembly {}/{}, send {}/{}, refused links {}, over budget {}, late answers {}, \
         heartbeat timeouts {}, expired {}, protocol errors {}, accept stalls {}, not allowed {}, over per-source \
         bound {}, refused by exposure {}, tls links {}, plain refused {}, tls failures {}",
        h.links,
        h.max_links,
        fmt_bytes(h.reassembly_bytes),
        fmt_bytes(h.max_reassembly_bytes),
        fmt_bytes(h.send_bytes),
        fmt_bytes(h.max_send_bytes),
        h.refused_links,
        h.over_budget,
        h.late_answers,
        h.heartbeat_timeouts,
        h.expired,
        h.protocol_errors,
        h.accept_stalls,
        h.refused_not_allowed,
        h.refused_per_source,
        h.refused_exposure,
        h.tls_links,
        h.refused_plain,
        h.tls_failures
    )
}

/// The engine's log for a subcommand: one line on stderr, `skynet-cluster CMD: text`, with a
/// timestamp for the long-running ones. Without `links`, lines that report a link going down
/// are left out: the command reports that failure itself (a call's error, watch's events),
/// so the user reads it once.
pub fn log_hook(cmd: &'static str, links: bool, stamp: bool) -> skynet_cluster::engine::LogHook {
    skynet_cluster::engine::LogHook::new(move |r| {
        if r.reason.is_some() && !links {
            return;
        }
        if stamp {
            eprintln!("{} skynet-cluster {cmd}: {}: {}", timestamp(), r.level, r.text);
        } else {
            eprintln!("skynet-cluster {cmd}: {}: {}", r.level, r.text);
        }
    })
}
