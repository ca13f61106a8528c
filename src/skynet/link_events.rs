//! Link events for subscribed services (`cluster.linkevent`): see "Link events" in the
//! module docs.

use super::api::PTYPE_RESPONSE;
use super::Core;
use crate::engine::{LinkDir, LinkEvent};
use crate::seri::{self, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::c_int;

/// Events kept for a subscriber that has not polled yet; more are counted as lost.
pub(super) const LINK_EVENTS_KEPT: usize = 8192;

/// Link events for subscribed services (`cluster.linkevent`): see "Link events".
#[derive(Default)]
pub(super) struct LinkWatch {
    /// Links up now, by link id: a new subscriber's first events.
    up: BTreeMap<u64, LinkEvent>,
    /// By the subscriber's handle.
    pub(super) subs: HashMap<u32, Subscriber>,
}

#[derive(Default)]
pub(super) struct Subscriber {
    /// The session of the subscriber's poll waiting for events.
    pub(super) waiting: Option<c_int>,
    queue: VecDeque<LinkEvent>,
    /// Events not kept since the last poll (the queue was full).
    lost: u64,
}

impl Subscriber {
    fn push(&mut self, ev: &LinkEvent) {
        if self.queue.len() < LINK_EVENTS_KEPT {
            self.queue.push_back(ev.clone());
        } else {
            self.lost += 1;
        }
    }

    /// The answer to a poll: the queued events (an array of tables) and the number lost.
    fn take(&mut self) -> Vec<u8> {
        let events: Vec<Value> = self.queue.drain(..).map(|e| event_value(&e)).collect();
        let lost = std::mem::take(&mut self.lost);
        seri::encode(&[Value::Table(seri::Table::from_array(events)), Value::Integer(lost as i64)]).unwrap_or_default()
    }
}

/// One event as cluster.linkevent hands it to Lua: `{ node =, up =, reason =, dir =,
/// peer =, link = }` (`node` only for outbound links, `reason` only for a down).
fn event_value(ev: &LinkEvent) -> Value {
    let s = |x: &str| Value::String(x.as_bytes().to_vec());
    let mut kv = vec![
        (s("up"), Value::Boolean(ev.is_up())),
        (s("dir"), s(if ev.dir == LinkDir::Outbound { "outbound" } else { "inbound" })),
        (s("link"), Value::Integer(ev.link as i64)),
    ];
    if ev.dir == LinkDir::Outbound {
        kv.push((s("node"), s(&ev.node)));
    }
    if let Some(p) = ev.peer {
        kv.push((s("peer"), s(&p.to_string())));
    }
    if let Some(r) = &ev.down {
        kv.push((s("reason"), s(&r.to_string())));
    }
    Value::Table(seri::Table::from_pairs(kv))
}

impl Core {
    /// The engine's link hook (I/O thread, or the thread of a reload): queue the event for
    /// every subscriber and answer the polls that wait. Never blocks: one short lock, and
    /// `skynet_send`s after it.
    pub(super) fn on_link_event(&self, ev: &LinkEvent) {
        if ev.dir == LinkDir::Inbound && ev.down.is_some() {
            self.closed_links.lock().push(ev.link);
        }
        let answers: Vec<(u32, c_int, Vec<u8>)> = {
            let mut w = self.links.lock();
            if ev.is_up() {
                w.up.insert(ev.link, ev.clone());
            } else {
                w.up.remove(&ev.link);
            }
            w.subs
                .iter_mut()
                .filter_map(|(&h, sub)| {
                    sub.push(ev);
                    let session = sub.waiting.take()?;
                    Some((h, session, sub.take()))
                })
                .collect()
        };
        self.answer_polls(answers);
    }

    /// Sends poll answers; a subscriber that no longer exists is forgotten.
    fn answer_polls(&self, answers: Vec<(u32, c_int, Vec<u8>)>) {
        if answers.is_empty() {
            return;
        }
        let gone: Vec<u32> = answers
            .into_iter()
            .filter(|(h, session, m)| self.send(*h, PTYPE_RESPONSE, *session, m) < 0)
            .map(|a| a.0)
            .collect();
        if !gone.is_empty() {
            let mut w = self.links.lock();
            for h in gone {
                w.subs.remove(&h);
            }
        }
        self.wake();
    }

    /// [`Cmd::LinkEvents`](super::Cmd::LinkEvents) from `source`; `session` is its call's (0: a send, ignored).
    pub(super) fn link_events_cmd(&self, source: u32, session: c_int, what: &[u8]) -> Result<(), String> {
        if session == 0 {
            return Ok(());
        }
        // (destination, session, message); an empty message: no values (no more events).
        let mut answers: Vec<(u32, c_int, Vec<u8>)> = Vec::new();
        {
            let mut w = self.links.lock();
            match what {
                b"start" => {
                    let queue: VecDeque<LinkEvent> = w.up.values().cloned().collect();
                    let old = w.subs.insert(source, Subscriber { waiting: None, queue, lost: 0 });
                    if let Some(prev) = old.and_then(|o| o.waiting) {
                        answers.push((source, prev, Vec::new()));
                    }
                    answers.push((source, session, Vec::new()));
                }
                b"stop" => {
                    if let Some(prev) = w.subs.remove(&source).and_then(|o| o.waiting) {
                        answers.push((source, prev, Vec::new()));
                    }
                    answers.push((source, session, Vec::new()));
                }
                b"poll" => match w.subs.get_mut(&source) {
                    None => answers.push((source, session, Vec::new())),
                    Some(sub) => {
                        if let Some(prev) = sub.waiting.take() {
                            answers.push((source, prev, Vec::new()));
                        }
                        if sub.queue.is_empty() && sub.lost == 0 {
                            sub.waiting = Some(session);
                        } else {
                            answers.push((source, session, sub.take()));
                        }
                    }
                },
                other => {
                    return Err(format!(
                        "skcluster: linkevents: unknown request {:?} (start, poll or stop)",
                        String::from_utf8_lossy(other)
                    ))
                }
            }
        }
        for (h, session, m) in answers {
            self.send(h, PTYPE_RESPONSE, session, &m);
        }
        Ok(())
    }
}
