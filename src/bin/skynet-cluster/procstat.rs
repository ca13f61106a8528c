//! CPU time and memory of this process and of a child, from getrusage and /proc.

use std::time::Duration;

/// CPU time (user + system) this process used so far.
pub fn self_cpu() -> Duration {
    // SAFETY: `ru` is a valid, writable rusage; getrusage fills it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// CPU time the calling thread used so far.
pub fn thread_cpu() -> Duration {
    // SAFETY: `ts` is a valid, writable timespec.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Peak RSS of this process, in KiB.
pub fn self_peak_rss_kib() -> u64 {
    status_field("self", "VmHWM:").unwrap_or(0)
}

/// CPU time (utime + stime) of process `pid`, from /proc/<pid>/stat.
pub fn pid_cpu(pid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros((utime + stime) * 1_000_000 / hz))
}

/// Peak RSS of process `pid`, in KiB.
pub fn pid_peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(&pid.to_string(), "VmHWM:")
}

/// Current RSS of process `pid`, in KiB.
pub fn pid_rss_kib(pid: u32) -> Option<u64> {
    status_field(&pid.to_string(), "VmRSS:")
}

fn status_field(pid: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}
