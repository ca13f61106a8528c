//! Control commands: what cluster.lua's `cluster.reload`, `cluster.open`,
//! `cluster.register`, ... send to the service (a `PTYPE_LUA` message whose first value
//! is an integer, a [`Cmd`]), and their answers.

use super::api::{PTYPE_ERROR, PTYPE_RESPONSE};
use super::packed::show_value;
use super::{Core, Inst};
use crate::engine::{Handle, Health, MapValue, NodeAddr, NodeMap};
use crate::seri::{self, Table, Value};
use std::sync::atomic::Ordering;

/// Control commands (the first packed value of a control message).
#[repr(i64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// `reload(table)`: node map and `__` options, as `cluster.reload`. Answers `nil`.
    Reload = 1,
    /// `listen(host, port)` or `listen(nodename)`: as `cluster.open`. Answers `host, port`.
    Listen = 2,
    /// `register(name, addr|nil)`: as `cluster.register` (addr defaults to the sender).
    Register = 3,
    /// `unregister(name)`.
    Unregister = 4,
    /// `nodestate(node)`: `"absent"`, `"down"` or `"up"` (cluster.lua's error path).
    NodeState = 5,
    /// Answers with `PTYPE_ERROR`: lets the launcher learn skynet.lua's `call failed` text.
    Probe = 6,
    /// `texts(call_failed, invalid_address, open_answers_address)`: the error texts stock's
    /// clusteragent would send for a target that raised / an unknown local name (skynet.lua
    /// positions), and whether this skynet's `cluster.open(nodename)` answers host and port.
    Texts = 7,
    /// `stats()`: `calls, pushes` served (inbound) and made (outbound).
    Stats = 8,
    /// `linkevents("start" | "poll" | "stop")`: link events for the calling service (see
    /// "Link events"). A `"poll"` may be answered later, when an event comes.
    LinkEvents = 9,
    /// `health()`: a table of the engine's [`Health`] counters and limits, plus
    /// `inflight` (inbound calls waiting for their target), `abandoned` (inbound calls
    /// dropped because their link closed first) and `link_subscribers`.
    Health = 10,
    /// `reloadtls()`: reads the TLS certificate files again (`cluster_tls_*`). Answers
    /// `true`, or `false, reason` (the certificates in use stay; the engine logs it too).
    ReloadTls = 11,
}

impl TryFrom<i64> for Cmd {
    /// The number that names no command.
    type Error = i64;

    fn try_from(n: i64) -> Result<Cmd, i64> {
        Ok(match n {
            1 => Cmd::Reload,
            2 => Cmd::Listen,
            3 => Cmd::Register,
            4 => Cmd::Unregister,
            5 => Cmd::NodeState,
            6 => Cmd::Probe,
            7 => Cmd::Texts,
            8 => Cmd::Stats,
            9 => Cmd::LinkEvents,
            10 => Cmd::Health,
            11 => Cmd::ReloadTls,
            other => return Err(other),
        })
    }
}

/// What a command answers: `Ok(Some(values))`, `Ok(None)` (an empty message: Lua sees no
/// values), or `Err(text)`: `text` is logged (unless empty) and the answer is `PTYPE_ERROR`.
type Answer = Result<Option<Vec<Value>>, String>;

impl Inst {
    /// A `PTYPE_LUA` message whose first value is not a node name: a control command.
    pub(super) fn on_control(&self, session: i32, source: u32, data: &[u8]) {
        let core = self.core();
        // Whatever was kept goes first.
        self.flush();
        if session != 0 {
            core.st.lock().trace.remove(&source);
        }
        let values = match seri::decode(data) {
            Ok(v) => v,
            Err(e) => {
                core.log(&format!("skcluster: bad control message: {}", e.stock_message()));
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
                return;
            }
        };
        let cmd = values.first().and_then(|c| c.as_integer()).map(Cmd::try_from);
        let answer = match cmd {
            Some(Ok(Cmd::LinkEvents)) => {
                // Answered by link_events_cmd, maybe later (a poll waits for the next event).
                let what = values.get(1).and_then(|v| v.as_bytes()).unwrap_or(b"poll");
                match core.link_events_cmd(source, session, what) {
                    Ok(()) => return,
                    Err(e) => Err(e),
                }
            }
            Some(Ok(cmd)) => self.control(cmd, source, &values),
            Some(Err(other)) => Err(format!("skcluster: unknown command {other}")),
            None => Err("skcluster: bad control message".into()),
        };
        match answer {
            Ok(ret) if session != 0 => {
                let out = ret.map(|vals| seri::encode(&vals).unwrap_or_default()).unwrap_or_default();
                core.send(source, PTYPE_RESPONSE, session, &out);
            }
            Ok(_) => {}
            Err(e) => {
                if !e.is_empty() {
                    core.log(&e);
                }
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
            }
        }
    }

    /// Runs control command `cmd`; `v` is the whole message (`v[0]` is the command).
    fn control(&self, cmd: Cmd, source: u32, v: &[Value]) -> Answer {
        let core = self.core();
        let handle: &Handle = self.node.as_ref().expect("initialised");
        let arg = |i: usize| v.get(i).cloned().unwrap_or(Value::Nil);
        match cmd {
            Cmd::Reload => self.reload(handle, arg(1)),
            Cmd::Listen => self.listen(handle, &arg(1), arg(2), &arg(3)),
            Cmd::Register => self.register(handle, source, &arg(1), arg(2)),
            Cmd::Unregister => self.unregister(handle, &arg(1)),
            Cmd::NodeState => {
                let s = match handle.node_addr(arg(1).as_str().unwrap_or("")) {
                    NodeAddr::Absent => "absent",
                    NodeAddr::Down => "down",
                    NodeAddr::At(_) => "up",
                };
                Ok(Some(vec![Value::String(s.as_bytes().to_vec())]))
            }
            Cmd::Probe => Err(String::new()),
            Cmd::Texts => {
                let mut t = core.texts.write();
                if let Some(s) = arg(1).as_bytes() {
                    t.call_failed = s.to_vec();
                }
                if let Some(s) = arg(2).as_bytes() {
                    t.invalid_address = s.to_vec();
                }
                t.open_answers_address = arg(3).truthy();
                Ok(None)
            }
            Cmd::Stats => Ok(Some(vec![
                Value::Integer(core.served_calls.load(Ordering::Relaxed) as i64),
                Value::Integer(core.served_pushes.load(Ordering::Relaxed) as i64),
                Value::Integer(core.made_calls.load(Ordering::Relaxed) as i64),
                Value::Integer(core.made_pushes.load(Ordering::Relaxed) as i64),
            ])),
            Cmd::Health => Ok(Some(vec![core.health_value(&handle.health())])),
            Cmd::ReloadTls => Ok(Some(match handle.reload_tls() {
                Ok(()) => vec![Value::Boolean(true)],
                Err(e) => vec![Value::Boolean(false), Value::String(e.into_bytes())],
            })),
            // Answered in on_control before this.
            Cmd::LinkEvents => Err("skcluster: linkevents: not a plain command".into()),
        }
    }

    /// [`Cmd::Reload`]: `__` options (logged; `__nowaiting` applied at once), then the node map.
    fn reload(&self, handle: &Handle, map: Value) -> Answer {
        let core = self.core();
        let Value::Table(t) = map else {
            return Err("skcluster: reload needs a table".into());
        };
        let map = node_map(&t, |opt, val| {
            core.log(&format!("Config {opt} = {}", show_value(val)));
            if opt == "nowaiting" {
                handle.set_nowaiting(val.truthy());
            }
        })?;
        handle.reload(&map.reload_entries());
        Ok(Some(vec![Value::Nil]))
    }

    /// [`Cmd::Listen`]: `listen(host, port, maxclient)` or `listen(nodename, nil, maxclient)`.
    fn listen(&self, handle: &Handle, host: &Value, port: Value, maxclient: &Value) -> Answer {
        let core = self.core();
        let host = host.as_str().ok_or("skcluster: listen: address must be a string")?;
        if port.is_nil() {
            let NodeAddr::At(a) = handle.node_addr(host) else {
                return Err(format!("{host} is down"));
            };
            handle
                .listen_with(&a, listener_bound(maxclient)?)
                .map_err(|e| format!("skcluster: listen on {a} failed: {e}"))?;
            core.log(&format!("cluster listen {a} ({host})"));
            if core.texts.read().open_answers_address {
                // skynet 1.x's clusterd: the node's host and port, as numbers go.
                let (h, p) = a.rsplit_once(':').unwrap_or((a.as_str(), ""));
                let port = p.parse::<i64>().map(Value::Integer).unwrap_or(Value::Nil);
                return Ok(Some(vec![Value::String(h.as_bytes().to_vec()), port]));
            }
            return Ok(Some(vec![Value::String(host.as_bytes().to_vec()), Value::Nil]));
        }
        let port = port.as_integer().ok_or("skcluster: listen: port must be an integer")?;
        let a = format!("{host}:{port}");
        let got = handle
            .listen_with(&a, listener_bound(maxclient)?)
            .map_err(|e| format!("skcluster: listen on {a} failed: {e}"))?;
        core.log(&format!("cluster listen {got}"));
        Ok(Some(vec![Value::String(got.ip().to_string().into_bytes()), Value::Integer(got.port() as i64)]))
    }

    /// [`Cmd::Register`]: `register(name, addr|nil)`; a service holds one name at a time.
    fn register(&self, handle: &Handle, source: u32, name: &Value, addr: Value) -> Answer {
        let core = self.core();
        let name = name.as_bytes().ok_or("skcluster: register: name must be a string")?.to_vec();
        let addr = match addr {
            Value::Nil => source,
            a => a.as_integer().ok_or("skcluster: register: address must be a number")? as u32,
        };
        let mut st = core.st.lock();
        if st.names.contains_key(&name) {
            return Err(format!(
                "skcluster: register: name [{}] is already registered",
                String::from_utf8_lossy(&name)
            ));
        }
        let n = String::from_utf8_lossy(&name).into_owned();
        handle.register(&n, addr).map_err(|e| format!("skcluster: register: {e}"))?;
        if let Some(old) = st.name_of.remove(&addr) {
            st.names.remove(&old);
            handle.unregister(&String::from_utf8_lossy(&old));
        }
        st.names.insert(name.clone(), addr);
        st.name_of.insert(addr, name.clone());
        core.log(&format!("Register [{n}] :{addr:08x}"));
        Ok(None)
    }

    /// [`Cmd::Unregister`]: `unregister(name)`.
    fn unregister(&self, handle: &Handle, name: &Value) -> Answer {
        let core = self.core();
        let name = name.as_bytes().ok_or("skcluster: unregister: name must be a string")?.to_vec();
        let mut st = core.st.lock();
        if let Some(addr) = st.names.remove(&name) {
            st.name_of.remove(&addr);
            let n = String::from_utf8_lossy(&name).into_owned();
            handle.unregister(&n);
            core.log(&format!("Unregister [{n}] :{addr:08x}"));
        }
        Ok(None)
    }
}

/// `cluster.reload`'s table, read with the engine's node-map rules ([`NodeMap`], stock
/// `clusterd`'s): a key beginning with `__` is an option, handed to `option` (name without
/// the `__`, value) in table order as it is met; any other key is a node name whose value is
/// `"host:port"` or `false` (marked down). The first entry that breaks a rule ends the reload
/// with its error (options met before it have been handed over).
fn node_map(t: &Table, mut option: impl FnMut(&str, &Value)) -> Result<NodeMap, String> {
    let mut map = NodeMap::default();
    let array = t.array.iter().enumerate().map(|(i, v)| (Value::Integer(i as i64 + 1), v.clone()));
    for (k, val) in array.chain(t.hash.iter().cloned()) {
        let Some(name) = k.as_str().map(str::to_string) else {
            return Err(format!("skcluster: reload: node name {k:?} is not a string"));
        };
        let text;
        let v = match &val {
            Value::String(b) => {
                text = String::from_utf8_lossy(b).into_owned();
                MapValue::Str(&text)
            }
            Value::Boolean(b) => MapValue::Bool(*b),
            Value::Integer(n) => MapValue::Num(*n as f64),
            Value::Real(f) => MapValue::Num(*f),
            other => MapValue::Other(other.type_name()),
        };
        map.add(&name, v).map_err(|e| format!("skcluster: reload: {e}"))?;
        if let Some(opt) = name.strip_prefix("__") {
            option(opt, &val);
        }
    }
    Ok(map)
}

/// What `cluster.open(..., maxclient)` bounds a listener to. Stock's gate
/// (`lualib/snax/gateserver.lua`) counts a new client first and shuts it when
/// `client_number >= maxclient` (`maxclient` defaults to 1024): it keeps at most
/// `ceil(maxclient) - 1` clients. `None`: no bound of its own (NaN or infinity, which
/// stock's comparison never reaches).
fn listener_bound(maxclient: &Value) -> Result<Option<usize>, String> {
    let m = match maxclient {
        Value::Nil => 1024.0,
        Value::Integer(n) => *n as f64,
        Value::Real(f) => *f,
        other => return Err(format!("skcluster: listen: maxclient must be a number, got {}", other.type_name())),
    };
    if m.is_nan() || m == f64::INFINITY {
        return Ok(None);
    }
    Ok(Some((m.ceil() - 1.0).max(0.0).min(usize::MAX as f64) as usize))
}

impl Core {
    /// [`Cmd::Health`]'s table.
    pub(super) fn health_value(&self, h: &Health) -> Value {
        let n = |x: usize| Value::Integer(x as i64);
        let c = |x: u64| Value::Integer(x as i64);
        let fields = [
            ("links", n(h.links)),
            ("max_links", n(h.max_links)),
            ("reassembly_bytes", n(h.reassembly_bytes)),
            ("max_reassembly_bytes", n(h.max_reassembly_bytes)),
            ("send_bytes", n(h.send_bytes)),
            ("max_send_bytes", n(h.max_send_bytes)),
            ("late_answers", c(h.late_answers)),
            ("refused_links", c(h.refused_links)),
            ("over_budget", c(h.over_budget)),
            ("heartbeat_timeouts", c(h.heartbeat_timeouts)),
            ("expired", c(h.expired)),
            ("protocol_errors", c(h.protocol_errors)),
            ("accept_stalls", c(h.accept_stalls)),
            ("refused_not_allowed", c(h.refused_not_allowed)),
            ("refused_per_source", c(h.refused_per_source)),
            ("refused_exposure", c(h.refused_exposure)),
            ("tls_links", c(h.tls_links)),
            ("refused_plain", c(h.refused_plain)),
            ("tls_failures", c(h.tls_failures)),
            ("inflight", n(self.inflight.lock().len())),
            ("abandoned", c(self.abandoned.load(Ordering::Relaxed))),
            ("link_subscribers", n(self.links.lock().subs.len())),
        ];
        let kv = fields.into_iter().map(|(k, v)| (Value::String(k.as_bytes().to_vec()), v)).collect();
        Value::Table(seri::Table::from_pairs(kv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_numbered_as_cluster_lua_sends_them() {
        for n in 1..=11 {
            assert_eq!(Cmd::try_from(n).map(|c| c as i64), Ok(n));
        }
        assert_eq!(Cmd::try_from(0), Err(0));
        assert_eq!(Cmd::try_from(12), Err(12));
    }

    #[test]
    fn node_map_rules() {
        let s = |x: &str| Value::String(x.as_bytes().to_vec());
        let t = Table::from_pairs(vec![
            (s("__nowaiting"), Value::Boolean(true)),
            (s("db"), s("127.0.0.1:2528")),
            (s("gone"), Value::Boolean(false)),
        ]);
        let mut opts = Vec::new();
        let map = node_map(&t, |k, v| opts.push((k.to_string(), v.clone()))).unwrap();
        assert_eq!(map.nodes, vec![("db".into(), Some("127.0.0.1:2528".into())), ("gone".into(), None)]);
        assert_eq!(opts, vec![("nowaiting".to_string(), Value::Boolean(true))]);
        let bad = Table::from_pairs(vec![(s("db"), Value::Integer(1))]);
        assert!(node_map(&bad, |_, _| ()).unwrap_err().contains("must be a string or false, got number"));
        let array = Table::from_array(vec![s("x")]);
        assert!(node_map(&array, |_, _| ()).unwrap_err().contains("is not a string"));
    }

    /// `cluster.open(port, maxclient)`: stock's gate keeps `ceil(maxclient) - 1` clients.
    #[test]
    fn maxclient_as_stocks_gate_counts_it() {
        assert_eq!(listener_bound(&Value::Nil), Ok(Some(1023)));
        assert_eq!(listener_bound(&Value::Integer(3)), Ok(Some(2)));
        assert_eq!(listener_bound(&Value::Integer(1)), Ok(Some(0)));
        assert_eq!(listener_bound(&Value::Integer(-5)), Ok(Some(0)));
        assert_eq!(listener_bound(&Value::Real(2.5)), Ok(Some(2)));
        assert_eq!(listener_bound(&Value::Real(f64::NAN)), Ok(None));
        assert_eq!(listener_bound(&Value::Real(f64::INFINITY)), Ok(None));
        assert!(listener_bound(&Value::String(b"9".to_vec())).unwrap_err().contains("maxclient must be a number"));
    }
}
