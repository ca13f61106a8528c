//! Where the engine's log lines go: the host's hook ([`Config::log`](super::Config::log),
//! [`Handle::set_log`](super::Handle::set_log)): `skynet_error` inside skynet, a C callback,
//! the shell tool's stderr), or stderr when the host set none. Lines a peer could make flood
//! go through a [`RateLimit`].

use super::event::DownReason;
use parking_lot::RwLock;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much a line matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The engine cannot do its job (its poll failed, a host hook panicked).
    Error,
    /// Something a peer or a limit did: a link closed on an error, a connection refused by a
    /// limit, accept paused for lack of descriptors, a message refused by a budget.
    Warn,
    /// A state that ended well (accept resumed).
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        })
    }
}

/// One log line: its level, the typed reason when it reports a link going down, the text.
#[derive(Clone, Copy, Debug)]
pub struct LogRecord<'a> {
    pub level: Level,
    pub reason: Option<&'a DownReason>,
    pub text: &'a str,
}

/// The host's log hook. Runs on the thread that logs (usually the I/O thread): short, never
/// blocking. A panic in it is caught (and the line goes to stderr).
#[derive(Clone)]
pub struct LogHook(Arc<dyn Fn(&LogRecord<'_>) + Send + Sync>);

impl LogHook {
    pub fn new(f: impl Fn(&LogRecord<'_>) + Send + Sync + 'static) -> LogHook {
        LogHook(Arc::new(f))
    }
}

impl fmt::Debug for LogHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogHook")
    }
}

/// A node's log: the hook, replaceable while the node runs.
pub(crate) struct Logger {
    hook: RwLock<Option<LogHook>>,
}

impl Logger {
    pub fn new(hook: Option<LogHook>) -> Logger {
        Logger { hook: RwLock::new(hook) }
    }

    pub fn set(&self, hook: Option<LogHook>) {
        *self.hook.write() = hook;
    }

    pub fn log(&self, level: Level, reason: Option<&DownReason>, text: &str) {
        let hook = self.hook.read().clone();
        let rec = LogRecord { level, reason, text };
        match hook {
            Some(h) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (h.0)(&rec))).is_err() {
                    stderr(&rec);
                    stderr(&LogRecord { level: Level::Error, reason: None, text: "the log hook panicked" });
                }
            }
            None => stderr(&rec),
        }
    }

    pub fn warn(&self, text: &str) {
        self.log(Level::Warn, None, text)
    }

    pub fn error(&self, text: &str) {
        self.log(Level::Error, None, text)
    }
}

fn stderr(r: &LogRecord<'_>) {
    eprintln!("skynet-cluster engine: {}", r.text);
}

/// At most one line per `every`; the lines held back are counted and reported with the
/// next one let through.
pub(crate) struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl RateLimit {
    pub const fn new(every: Duration) -> Self {
        RateLimit { every, last: None, held: 0 }
    }

    /// Logs `msg` unless a line went out less than `every` ago.
    pub fn log(
        &mut self,
        log: &Logger,
        level: Level,
        reason: Option<&DownReason>,
        now: Instant,
        msg: impl FnOnce() -> String,
    ) {
        if self.last.is_some_and(|t| now.duration_since(t) < self.every) {
            self.held += 1;
            return;
        }
        self.last = Some(now);
        let held = std::mem::take(&mut self.held);
        if held > 0 {
            log.log(level, reason, &format!("{} ({held} more like it not shown)", msg()));
        } else {
            log.log(level, reason, &msg());
        }
    }
}
