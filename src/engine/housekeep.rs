//! What the I/O loop checks on a clock rather than on socket events: listeners waiting for
//! file descriptors, multi-part messages a peer left unfinished, idle accepted links, and
//! heartbeats on idle outbound links.

use super::budget::Counters;
use super::config::Config;
use super::event::DownReason;
use super::io::IoLoop;
use mio::Token;
use std::time::Duration;

/// How often housekeeping runs: a quarter of the shortest timer configured (so a deadline
/// is noticed within 25% of its length), between 10 ms and 1 s; `None` when no timer is on
/// (then it runs only while a listener waits for descriptors).
pub(crate) fn tick(cfg: &Config) -> Option<Duration> {
    let timers =
        [cfg.multi_timeout, cfg.idle_timeout, cfg.heartbeat.map(|h| h.interval), cfg.heartbeat.map(|h| h.deadline)];
    timers.into_iter().flatten().min().map(|d| (d / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)))
}

impl IoLoop {
    /// One housekeeping pass (on the thread that runs the loop, inside the round's batch).
    pub(super) fn housekeep(&mut self, scratch: &mut [u8]) {
        let now = self.now;
        let stalled: Vec<Token> = self
            .listeners
            .iter()
            .filter(|(_, l)| l.stall.as_ref().is_some_and(|s| s.retry_at <= now))
            .map(|(t, _)| *t)
            .collect();
        for t in stalled {
            self.accept(t, scratch);
        }
        let cfg = &self.inner.cfg;
        let (multi, idle, hb) = (cfg.multi_timeout, cfg.idle_timeout, cfg.heartbeat);
        if multi.is_none() && idle.is_none() && hb.is_none() {
            return;
        }
        let mut closing = Vec::new();
        for (t, e) in self.conns.iter_mut() {
            if let (Some(limit), Some((session, started))) = (multi, e.oldest_multi()) {
                if now.saturating_duration_since(started) >= limit {
                    let why = format!("multi-part message (session {session}) not completed within {limit:?}");
                    closing.push((*t, DownReason::Expired(why), false));
                    continue;
                }
            }
            if e.conn.inbound {
                if let Some(limit) = idle {
                    if now.saturating_duration_since(e.last_in) >= limit {
                        closing.push((*t, DownReason::Expired(format!("nothing received for {limit:?}")), false));
                    }
                }
                continue;
            }
            let Some(hb) = hb else { continue };
            let (connected, answered) = {
                let st = e.conn.st.lock();
                (st.connected, e.probe.is_some_and(|(s, _)| !st.pending.contains_key(&s)))
            };
            if !connected {
                continue;
            }
            if let Some((_, sent)) = e.probe {
                if answered {
                    e.probe = None;
                } else if now.saturating_duration_since(sent) >= hb.deadline {
                    let why = format!("no answer to a probe within {:?}", hb.deadline);
                    closing.push((*t, DownReason::Heartbeat(why), true));
                    continue;
                }
            }
            if e.probe.is_none() && now.saturating_duration_since(e.last_in) >= hb.interval {
                e.probe = super::peer::send_probe(&e.conn).map(|s| (s, now));
            }
        }
        for (t, why, heartbeat) in closing {
            let c = &self.inner.io.counters;
            Counters::add(if heartbeat { &c.heartbeat_timeouts } else { &c.expired });
            self.close(t, why);
        }
    }
}
