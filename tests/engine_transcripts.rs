//! Stock-compatibility replay of `../shared/golden/transcripts/*.jsonl` (env `SKC_GOLDEN`
//! overrides the golden directory), both ways:
//!
//! * **stock client -> our listener**: the recorded client frames are written to our node
//!   frame by frame, in the recorded order (interleavings included), and our response
//!   frames are checked byte for byte against the recorded server frames.
//! * **our outbound side -> stock server**: the recorded ops are replayed through our
//!   `Handle` (call / push / query / trace) against a fake server that answers each
//!   completed request with the recorded server frames of its session; our request frames
//!   are checked byte for byte against the recorded client frames.
//!
//! What the recording cannot fix, and how it is treated:
//! * Trace frames carry stock's nodename (hostname + pid). Our side is configured with the
//!   recorded nodename (read out of the trace frame), so they compare byte for byte.
//! * `getpushes` answers are made by the stock echo service: md5 digests in a table with
//!   string keys, whose bytes follow Lua's hash order. The test service answers with the
//!   recorded payload and checks that it received as many pushes as the recorded answer lists.
//! * Stock writes multi-part frames at low priority, so across sessions its frames interleave
//!   and answers leave in completion order (`11_push_large_then_call`, `21_concurrent`). We
//!   compare per message (frames of one session, plus the trace frame before it), not the
//!   order across sessions. Our outbound side never interleaves messages, so the stream
//!   order differs from stock's there by design; the replay of stock's interleaved stream
//!   into our listener checks that we reassemble it.
//! * Addresses (`10`) depend on stock's service start order: the test registers `echo` as 10.

use serde_json::Value as J;
use skynet_cluster::engine::{Address, CallError, CallOpts, Config, FnService, Inbound, Node, Responder};
use skynet_cluster::{seri, wire};
use std::collections::{BTreeMap, HashMap};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

const ECHO_ADDR: u32 = 10;
const RAISE_TEXT: &[u8] = b"./skynet/lualib/skynet.lua:720: call failed";
const INVALID_ADDR_TEXT: &[u8] = b"./skynet/lualib/skynet.lua:747: call to invalid address";

mod golden_util;
use golden_util::*;

fn entries(packed: &[u8]) -> usize {
    match skynet_cluster::seri::decode(packed).unwrap().first() {
        Some(skynet_cluster::seri::Value::Table(t)) => t.array.len() + t.hash.len(),
        other => panic!("getpushes answer is not a table: {other:?}"),
    }
}

/// Our node as the recorded echo service: `echo` returns its arguments (the payload after
/// the command string), `raise` fails with skynet's text, `push` counts, `getpushes`
/// answers the recorded payload after checking the count.
fn echo_node(expected: Arc<Mutex<HashMap<u32, Vec<u8>>>>) -> (Node, String) {
    let node = Node::new(Config::default()).unwrap();
    let addr = node.listen("127.0.0.1:0").unwrap().to_string();
    node.register("echo", ECHO_ADDR).expect("echo is not reserved");
    let pushes = Arc::new(Mutex::new(0usize));
    let p2 = pushes.clone();
    let is_echo = |a: Address<'_>| a == Address::Id(ECHO_ADDR) || a == Address::Name(b".echo");
    node.set_service(Arc::new(FnService {
        call: move |req: Inbound<'_>, r: Responder| {
            if !is_echo(req.addr) {
                return r.error(INVALID_ADDR_TEXT);
            }
            let (cmd, used) = seri::decode_str_prefix(req.payload).expect("command string first");
            match cmd {
                // Large answers through the no-copy path (framing checked byte for byte too).
                b"echo" if wire::response_is_multi(req.payload.len() - used) => {
                    r.ok_bytes(req.take_payload().slice(used..))
                }
                b"echo" => r.ok(&req.payload[used..]),
                b"raise" => r.error(RAISE_TEXT),
                b"getpushes" => {
                    let want = expected.lock().unwrap().get(&req.session).cloned().expect("recorded answer");
                    let mut n = pushes.lock().unwrap();
                    assert_eq!(*n, entries(&want), "pushes seen before getpushes (session {})", req.session);
                    *n = 0;
                    r.ok(&want)
                }
                other => panic!("unknown command {:?}", String::from_utf8_lossy(other)),
            }
        },
        push: move |req: Inbound<'_>| {
            assert!(is_echo(req.addr));
            assert_eq!(seri::decode_str_prefix(req.payload).unwrap().0, b"push");
            *p2.lock().unwrap() += 1;
        },
    }));
    (node, addr)
}

#[test]
fn stock_client_against_our_listener() {
    for t in load() {
        let want = by_session(&t.s2c);
        let expected: HashMap<u32, Vec<u8>> =
            want.iter().map(|(s, f)| (*s, response_payload(f).unwrap_or_default())).collect();
        let (_node, addr) = echo_node(Arc::new(Mutex::new(expected)));
        check_stock_client_against(&t, &addr);
    }
}

/// Decodes a typed JSON address.
fn op_addr(v: &J) -> Result<Vec<u8>, u32> {
    match v["t"].as_str().unwrap() {
        "str" => Ok(unhex(v["hex"].as_str().unwrap())),
        "int" => Err(v["v"].as_u64().unwrap() as u32),
        t => panic!("address type {t}"),
    }
}

#[test]
fn our_client_against_stock_server() {
    for t in load() {
        let node_name = t.header["node"].as_str().unwrap().to_string();
        let recorded = messages(&t.c2s);
        let answers = by_session(&t.s2c);
        let (nodename, tag) = recorded_trace(&recorded, &node_name);
        let want_frames: usize = recorded.iter().map(|m| m.frames.len()).sum();
        let (addr, server) = fake_stock_server(&t, want_frames);
        let cfg = Config { nodename: nodename.clone(), ..Config::default() };
        let node = Node::new(cfg).unwrap();
        node.reload(&[(&node_name, Some(&addr))]);
        // Map ops to recorded messages: calls and queries by session, pushes in order.
        let mut calls: HashMap<u32, Msg> =
            recorded.iter().filter(|m| !m.push).map(|m| (m.session, m.clone())).collect();
        let mut pushes = recorded.iter().filter(|m| m.push).cloned().collect::<Vec<_>>().into_iter();
        let mut session = 1u32;
        let mut traced = false;
        let mut pending = Vec::new();
        let ops = t.header["ops"].as_array().unwrap();
        for op in ops {
            let kind = op["op"].as_str().unwrap();
            if kind == "skynet.trace" {
                traced = true;
                continue;
            }
            let address = op_addr(&op["address"]);
            let a = match &address {
                Ok(n) => Address::Name(n),
                Err(id) => Address::Id(*id),
            };
            match kind {
                "cluster.send" => {
                    let m = pushes.next().expect("recorded push");
                    if m.session != 0 {
                        assert_eq!(m.session, session);
                        session = wire::next_session(session);
                    }
                    if m.payload.len() >= wire::MULTI_PART {
                        node.push_bytes(&node_name, a, bytes::Bytes::from(m.payload.clone())).unwrap();
                    } else {
                        node.push(&node_name, a, &m.payload).unwrap();
                    }
                }
                "cluster.query" => {
                    let m = calls.remove(&session).expect("recorded query");
                    let name = String::from_utf8(address.clone().unwrap()).unwrap();
                    let r = node.query(&node_name, &name, Some(Duration::from_secs(30)));
                    let ans = response_payload(&answers[&m.session]);
                    match (r, ans) {
                        (Ok(v), Ok(p)) => assert_eq!(seri::decode_integer_prefix(&p).unwrap().0, v as i64),
                        (Err(CallError::Remote(e)), Err(want)) => assert_eq!(e, want),
                        (r, a) => panic!("{}: query {r:?} vs recorded {a:?}", t.name),
                    }
                    session = wire::next_session(session);
                }
                "cluster.call" => {
                    let m = calls.remove(&session).expect("recorded call");
                    let ans = response_payload(&answers[&m.session]);
                    let trace = if traced { tag.clone() } else { None };
                    let concurrent = op.get("completion_index").is_some();
                    let (tx, rx) = mpsc::channel();
                    let opts = CallOpts { timeout: Some(Duration::from_secs(30)), trace: trace.as_deref() };
                    let done = move |r: Result<skynet_cluster::engine::Reply<'_>, CallError>| {
                        tx.send(r.map(|p| p.into_vec())).unwrap();
                    };
                    // Multi-part requests go through the no-copy path (framing checked too).
                    if m.payload.len() >= wire::MULTI_PART {
                        node.call_with_bytes(&node_name, a, bytes::Bytes::from(m.payload.clone()), opts, done).unwrap();
                    } else {
                        node.call_with(&node_name, a, &m.payload, opts, done).unwrap();
                    }
                    pending.push((rx, ans, t.name.clone()));
                    if !concurrent {
                        for (rx, ans, name) in pending.drain(..) {
                            check_answer(rx, ans, &name);
                        }
                    }
                    session = wire::next_session(session);
                }
                k => panic!("op {k}"),
            }
        }
        for (rx, ans, name) in pending.drain(..) {
            check_answer(rx, ans, &name);
        }
        assert!(calls.is_empty() && pushes.next().is_none(), "{}: every recorded message replayed", t.name);
        let ours = messages(&server.join().unwrap());
        // Per message, byte for byte: calls by session, pushes in order.
        let key = |m: &Msg| {
            if m.push && m.session == 0 {
                None
            } else {
                Some(m.session)
            }
        };
        let mut want_single: Vec<&Msg> = recorded.iter().filter(|m| key(m).is_none()).collect();
        let mut got_single: Vec<&Msg> = ours.iter().filter(|m| key(m).is_none()).collect();
        assert_eq!(want_single.len(), got_single.len(), "{}", t.name);
        for (w, g) in want_single.drain(..).zip(got_single.drain(..)) {
            assert!(w.frames == g.frames, "{}: single push differs", t.name);
        }
        let want_s: BTreeMap<u32, &Msg> = recorded.iter().filter_map(|m| key(m).map(|k| (k, m))).collect();
        let got_s: BTreeMap<u32, &Msg> = ours.iter().filter_map(|m| key(m).map(|k| (k, m))).collect();
        assert_eq!(want_s.keys().collect::<Vec<_>>(), got_s.keys().collect::<Vec<_>>(), "{}: sessions", t.name);
        for (s, w) in &want_s {
            assert!(w.frames == got_s[s].frames, "{}: request frames of session {s} differ", t.name);
        }
    }
}

fn check_answer(rx: mpsc::Receiver<Result<Vec<u8>, CallError>>, ans: Result<Vec<u8>, Vec<u8>>, name: &str) {
    let r = rx.recv_timeout(Duration::from_secs(30)).expect("answer (hang guard)");
    match (r, ans) {
        (Ok(p), Ok(w)) => assert!(p == w, "{name}: answer payload differs"),
        (Err(CallError::Remote(e)), Err(w)) => assert_eq!(e, w, "{name}"),
        (r, a) => panic!("{name}: got {r:?}, recorded {a:?}"),
    }
}
