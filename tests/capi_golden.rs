//! The golden transcripts (`../shared/golden/transcripts`, env `SKC_GOLDEN`) replayed against
//! the **C API** (the `extern "C"` functions, called as a C program would), both ways:
//!
//! * **stock client -> a C-API server**: a node made with `skc_node_new` / `skc_listen` /
//!   `skc_register` / `skc_serve` plays the recorded echo service. Its handler reads each
//!   request with `skc_unpack` and builds the echo answer with `skc_pack_value` +
//!   `skc_pack_finish` (re-encoding what it decoded), answers through `skc_respond` /
//!   `skc_respond_error`. The recorded client frames are written to it and its response frames
//!   must equal the recorded server frames byte for byte.
//! * **a C-API client -> stock server**: every recorded op is replayed through `skc_pack_*`
//!   (the arguments, from their typed JSON), `skc_call` / `skc_call_queued` (the concurrent
//!   scenario) / `skc_push` / `skc_query` / `skc_trace` against a fake server that answers with
//!   the recorded frames. Our request frames must equal stock's per message byte for byte, and
//!   each answer read back with `skc_unpack` / `skc_values_*` must equal the recorded return
//!   values.
//!
//! Stock-dependent details are handled as in tests/engine_transcripts.rs: the nodename comes from
//! the recorded trace frame, `echo` is registered as address 10, `getpushes` answers are the
//! recorded payload, and messages are compared per session (stock interleaves multi-part frames).

use serde_json::Value as J;
use skynet_cluster::capi::*;
use skynet_cluster::wire;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::Mutex;

const ECHO_ADDR: u32 = 10;
const RAISE_TEXT: &str = "./skynet/lualib/skynet.lua:720: call failed";
const INVALID_ADDR_TEXT: &str = "./skynet/lualib/skynet.lua:747: call to invalid address";
const OK: skc_status = skc_status::SKC_OK;

mod golden_util;
use golden_util::*;

fn must(rc: skc_status, what: &str) {
    if rc != OK {
        // SAFETY: skc_last_error returns a NUL-terminated string owned by the library.
        let e = unsafe { std::ffi::CStr::from_ptr(skc_last_error()) };
        panic!("{what}: {rc:?}: {}", e.to_string_lossy());
    }
}

// ---- the C-API server ----

struct ServerState {
    /// Recorded getpushes answers by session.
    getpushes: HashMap<u32, Vec<u8>>,
    pushes: Mutex<usize>,
}

fn respond_error(r: *mut skc_responder, text: &str) {
    let c = CString::new(text).unwrap();
    must(skc_respond_error(r, c.as_ptr()), "skc_respond_error");
}

/// The recorded echo service, written against the C API only.
unsafe extern "C" fn echo_handler(ud: *mut c_void, req: *const skc_request, r: *mut skc_responder) {
    // SAFETY: `ud` is the ServerState the test passed to skc_serve (alive until the node is
    // destroyed); `req` and its pointers are valid for this call.
    let (st, req) = unsafe { (&*(ud as *const ServerState), &*req) };
    let is_echo = if req.name.is_null() {
        req.id == ECHO_ADDR
    } else {
        // SAFETY: a NUL-terminated name, valid during the call.
        unsafe { std::ffi::CStr::from_ptr(req.name) }.to_bytes() == b".echo"
    };
    if !is_echo {
        assert!(!r.is_null(), "push to an unknown address");
        return respond_error(r, INVALID_ADDR_TEXT);
    }
    let mut v = ptr::null_mut();
    must(skc_unpack(req.data, req.len, &mut v), "skc_unpack");
    let (mut s, mut sl) = (ptr::null(), 0usize);
    must(skc_values_string(v, 0, &mut s, &mut sl), "command string");
    // SAFETY: borrowed from `v` until skc_values_free.
    let cmd = unsafe { std::slice::from_raw_parts(s, sl) }.to_vec();
    if r.is_null() {
        assert_eq!(cmd, b"push");
        *st.pushes.lock().unwrap() += 1;
    } else {
        match &cmd[..] {
            b"echo" => {
                let mut n = 0usize;
                must(skc_values_count(v, &mut n), "count");
                let mut p = ptr::null_mut();
                must(skc_pack_new(&mut p), "skc_pack_new");
                for i in 1..n {
                    must(skc_pack_value(p, v, i), "skc_pack_value");
                }
                let (mut out, mut len) = (ptr::null_mut(), 0usize);
                must(skc_pack_finish(p, &mut out, &mut len), "skc_pack_finish");
                must(skc_respond(r, out, len), "skc_respond");
                skc_free(out.cast());
            }
            b"raise" => respond_error(r, RAISE_TEXT),
            b"getpushes" => {
                let want = st.getpushes.get(&req.session).expect("recorded getpushes answer");
                let mut n = st.pushes.lock().unwrap();
                let mut w = ptr::null_mut();
                must(skc_unpack(want.as_ptr(), want.len(), &mut w), "unpack recorded answer");
                let (mut a, mut h) = (ptr::null_mut(), ptr::null_mut());
                must(skc_values_array(w, 0, &mut a), "array part");
                must(skc_values_hash(w, 0, &mut h), "hash part");
                let (mut na, mut nh) = (0usize, 0usize);
                must(skc_values_count(a, &mut na), "count");
                must(skc_values_count(h, &mut nh), "count");
                assert_eq!(*n, na + nh / 2, "pushes seen before getpushes");
                *n = 0;
                for x in [a, h, w] {
                    must(skc_values_free(x), "free");
                }
                must(skc_respond(r, want.as_ptr(), want.len()), "skc_respond");
            }
            other => panic!("unknown command {:?}", String::from_utf8_lossy(other)),
        }
    }
    must(skc_values_free(v), "skc_values_free");
}

#[test]
fn stock_client_against_capi_server() {
    for t in load() {
        let want = by_session(&t.s2c);
        let st = Box::new(ServerState {
            getpushes: want.iter().map(|(s, f)| (*s, response_payload(f).unwrap_or_default())).collect(),
            pushes: Mutex::new(0),
        });
        let mut node = ptr::null_mut();
        must(skc_node_new(ptr::null(), &mut node), "skc_node_new");
        let mut port = 0u16;
        must(skc_listen(node, c"127.0.0.1:0".as_ptr(), &mut port), "skc_listen");
        must(skc_register(node, c"echo".as_ptr(), ECHO_ADDR), "skc_register");
        must(skc_serve(node, Some(echo_handler), &*st as *const ServerState as *mut c_void), "skc_serve");
        check_stock_client_against(&t, ("127.0.0.1", port));
        must(skc_node_destroy(node), "skc_node_destroy");
        drop(st);
    }
}

// ---- the C-API client ----

/// Appends one typed JSON value to a builder.
fn pack_typed(p: *mut skc_pack, v: &J) {
    let rc = match v["t"].as_str().unwrap() {
        "nil" => skc_pack_nil(p),
        "bool" => skc_pack_boolean(p, v["v"].as_bool().unwrap()),
        "int" => skc_pack_integer(p, v["v"].as_i64().unwrap()),
        "num" => {
            let x = match &v["v"] {
                J::String(s) if s == "nan" => f64::NAN,
                J::String(s) if s == "inf" => f64::INFINITY,
                J::String(s) if s == "-inf" => f64::NEG_INFINITY,
                n => n.as_f64().unwrap(),
            };
            skc_pack_real(p, x)
        }
        "str" => {
            let b = unhex(v["hex"].as_str().unwrap());
            skc_pack_lstring(p, b.as_ptr(), b.len())
        }
        "table" => {
            must(skc_pack_table_begin(p), "table_begin");
            for x in v["v"].as_array().into_iter().flatten() {
                pack_typed(p, x);
            }
            for kv in v["kv"].as_array().into_iter().flatten() {
                must(skc_pack_key(p), "key");
                pack_typed(p, &kv[0]);
                pack_typed(p, &kv[1]);
            }
            skc_pack_table_end(p)
        }
        t => panic!("typed value {t}"),
    };
    must(rc, "pack");
}

fn pack_args(args: &[J]) -> Vec<u8> {
    let mut p = ptr::null_mut();
    must(skc_pack_new(&mut p), "skc_pack_new");
    for a in args {
        pack_typed(p, a);
    }
    let (mut out, mut len) = (ptr::null_mut(), 0usize);
    must(skc_pack_finish(p, &mut out, &mut len), "skc_pack_finish");
    // SAFETY: `out` holds `len` bytes from the library; copied, then freed with skc_free.
    let v = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
    skc_free(out.cast());
    v
}

/// Reads value `i` of `v` back into the typed JSON form (array-only tables, as recorded).
fn read_typed(v: *const skc_values, i: usize) -> J {
    let mut t = skc_type::SKC_TYPE_NIL;
    must(skc_values_type(v, i, &mut t), "skc_values_type");
    match t {
        skc_type::SKC_TYPE_NIL => serde_json::json!({"t": "nil"}),
        skc_type::SKC_TYPE_BOOLEAN => {
            let mut b = false;
            must(skc_values_boolean(v, i, &mut b), "boolean");
            serde_json::json!({"t": "bool", "v": b})
        }
        skc_type::SKC_TYPE_INTEGER => {
            let mut n = 0i64;
            must(skc_values_integer(v, i, &mut n), "integer");
            serde_json::json!({"t": "int", "v": n})
        }
        skc_type::SKC_TYPE_REAL => {
            let mut d = 0f64;
            must(skc_values_real(v, i, &mut d), "real");
            serde_json::json!({"t": "num", "v": d})
        }
        skc_type::SKC_TYPE_STRING => {
            let (mut s, mut n) = (ptr::null(), 0usize);
            must(skc_values_string(v, i, &mut s, &mut n), "string");
            // SAFETY: borrowed from `v`.
            let b = unsafe { std::slice::from_raw_parts(s, n) };
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            serde_json::json!({"t": "str", "hex": hex})
        }
        skc_type::SKC_TYPE_TABLE => {
            let mut a = ptr::null_mut();
            must(skc_values_array(v, i, &mut a), "array");
            let items = read_all(a);
            must(skc_values_free(a), "free");
            serde_json::json!({"t": "table", "v": items})
        }
        skc_type::SKC_TYPE_USERDATA => panic!("userdata in an answer"),
    }
}

fn read_all(v: *const skc_values) -> Vec<J> {
    let mut n = 0usize;
    must(skc_values_count(v, &mut n), "count");
    (0..n).map(|i| read_typed(v, i)).collect()
}

fn unpack_typed(b: &[u8]) -> Vec<J> {
    let mut v = ptr::null_mut();
    must(skc_unpack(b.as_ptr(), b.len(), &mut v), "skc_unpack");
    let r = read_all(v);
    must(skc_values_free(v), "free");
    r
}

fn has_kv(v: &J) -> bool {
    match v {
        J::Object(m) => m.contains_key("kv") || m.values().any(has_kv),
        J::Array(a) => a.iter().any(has_kv),
        _ => false,
    }
}

fn last_error() -> Vec<u8> {
    // SAFETY: the library's thread-local text, skc_last_error_len bytes long.
    unsafe { std::slice::from_raw_parts(skc_last_error() as *const u8, skc_last_error_len()) }.to_vec()
}

/// What the stock server answered: Ok(payload) or Err(error text).
type Recorded = Result<Vec<u8>, Vec<u8>>;

/// What a call returned: Ok(answer bytes) or Err((status, text)).
type Outcome = Result<Vec<u8>, (skc_status, Vec<u8>)>;

fn check(name: &str, op: &J, got: Outcome, recorded: Result<Vec<u8>, Vec<u8>>) {
    match (got, recorded) {
        (Ok(p), Ok(w)) => {
            assert!(p == w, "{name}: answer bytes differ");
            if !has_kv(&op["ret"]) {
                let ret: Vec<J> = op["ret"].as_array().unwrap().clone();
                assert_eq!(unpack_typed(&p), ret, "{name}: answer read through skc_values_*");
            }
        }
        (Err((skc_status::SKC_ERR_REMOTE, e)), Err(w)) => assert_eq!(e, w, "{name}"),
        (g, w) => panic!("{name}: got {g:?}, recorded {w:?}"),
    }
}

#[test]
fn capi_client_against_stock_server() {
    for t in load() {
        let node_name = t.header["node"].as_str().unwrap().to_string();
        let recorded = messages(&t.c2s);
        let answers = by_session(&t.s2c);
        let (nodename, tag) = recorded_trace(&recorded, &node_name);
        let tag = tag.map(|t| String::from_utf8(t).unwrap());
        let want_frames: usize = recorded.iter().map(|m| m.frames.len()).sum();
        let (addr, server) = fake_stock_server(&t, want_frames);

        let nn = nodename.map(|n| CString::new(n).unwrap());
        let mut node = ptr::null_mut();
        must(skc_node_new(nn.as_ref().map_or(ptr::null(), |c| c.as_ptr()), &mut node), "skc_node_new");
        let map = CString::new(format!("{node_name} = \"{addr}\"")).unwrap();
        must(skc_reload_text(node, map.as_ptr()), "skc_reload_text");
        let peer = CString::new(node_name.clone()).unwrap();
        let mut q = ptr::null_mut();
        must(skc_queue_new(&mut q), "skc_queue_new");
        let mut queued: Vec<(u64, J, Recorded)> = Vec::new();
        let mut session = 1u32;
        let by_sess: HashMap<u32, &Msg> = recorded.iter().filter(|m| !m.push).map(|m| (m.session, m)).collect();
        for op in t.header["ops"].as_array().unwrap() {
            let kind = op["op"].as_str().unwrap();
            if kind == "skynet.trace" {
                let tg = CString::new(tag.clone().expect("a recorded trace frame")).unwrap();
                must(skc_trace(tg.as_ptr()), "skc_trace");
                continue;
            }
            let a = &op["address"];
            let (name, id) = match a["t"].as_str().unwrap() {
                "str" => (Some(CString::new(unhex(a["hex"].as_str().unwrap())).unwrap()), 0),
                _ => (None, a["v"].as_u64().unwrap() as u32),
            };
            let np = name.as_ref().map_or(ptr::null(), |c| c.as_ptr());
            let args: Vec<J> = op["args"].as_array().cloned().unwrap_or_default();
            match kind {
                "cluster.send" => {
                    let payload = pack_args(&args);
                    if wire::request_is_multi(payload.len()) {
                        session = wire::next_session(session);
                    }
                    must(skc_push(node, peer.as_ptr(), np, id, payload.as_ptr(), payload.len()), "skc_push");
                }
                "cluster.query" => {
                    let rec = response_payload(&answers[&by_sess[&session].session]);
                    let mut got = 0u32;
                    match (skc_query(node, peer.as_ptr(), np, 30000, &mut got), rec) {
                        (OK, Ok(p)) => assert_eq!(unpack_typed(&p), vec![serde_json::json!({"t":"int","v":got})]),
                        (skc_status::SKC_ERR_REMOTE, Err(w)) => {
                            assert_eq!(last_error(), w, "{}", t.name)
                        }
                        (rc, w) => panic!("{}: query {rc:?} vs recorded {w:?}", t.name),
                    }
                    session = wire::next_session(session);
                }
                "cluster.call" => {
                    let rec = response_payload(&answers[&by_sess[&session].session]);
                    let payload = pack_args(&args);
                    if op.get("completion_index").is_some() {
                        let token = session as u64;
                        must(
                            skc_call_queued(
                                node,
                                peer.as_ptr(),
                                np,
                                id,
                                payload.as_ptr(),
                                payload.len(),
                                30000,
                                q,
                                token,
                            ),
                            "skc_call_queued",
                        );
                        queued.push((token, op.clone(), rec));
                    } else {
                        let (mut out, mut len) = (ptr::null_mut(), 0usize);
                        let rc = skc_call(
                            node,
                            peer.as_ptr(),
                            np,
                            id,
                            payload.as_ptr(),
                            payload.len(),
                            30000,
                            &mut out,
                            &mut len,
                        );
                        let got = if rc == OK {
                            // SAFETY: the answer, `len` bytes, ours to free.
                            let v = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
                            skc_free(out.cast());
                            Ok(v)
                        } else {
                            Err((rc, last_error()))
                        };
                        check(&t.name, op, got, rec);
                    }
                    session = wire::next_session(session);
                }
                k => panic!("op {k}"),
            }
        }
        let mut done: HashMap<u64, Outcome> = HashMap::new();
        while done.len() < queued.len() {
            // SAFETY: a plain-data struct the library fills; zeroed is a valid initial value.
            let mut c: skc_completion = unsafe { std::mem::zeroed() };
            must(skc_queue_wait(q, 30000, &mut c, std::mem::size_of::<skc_completion>()), "skc_queue_wait");
            // SAFETY: `c.data` holds `c.len` bytes, ours to free.
            let b = unsafe { std::slice::from_raw_parts(c.data, c.len) }.to_vec();
            skc_free(c.data.cast());
            done.insert(c.token, if c.status == OK { Ok(b) } else { Err((c.status, b)) });
        }
        for (token, op, rec) in queued {
            check(&t.name, &op, done.remove(&token).unwrap(), rec);
        }
        must(skc_trace(ptr::null()), "skc_trace(NULL)");
        must(skc_queue_free(q), "skc_queue_free");
        let ours = messages(&server.join().unwrap());
        must(skc_node_destroy(node), "skc_node_destroy");
        // Per message, byte for byte: single-frame pushes in order, the rest by session.
        let key = |m: &Msg| {
            if m.push && m.session == 0 {
                None
            } else {
                Some(m.session)
            }
        };
        let w1: Vec<_> = recorded.iter().filter(|m| key(m).is_none()).map(|m| &m.frames).collect();
        let g1: Vec<_> = ours.iter().filter(|m| key(m).is_none()).map(|m| &m.frames).collect();
        assert!(w1 == g1, "{}: single-frame pushes differ", t.name);
        let ws: BTreeMap<u32, &Msg> = recorded.iter().filter_map(|m| key(m).map(|k| (k, m))).collect();
        let gs: BTreeMap<u32, &Msg> = ours.iter().filter_map(|m| key(m).map(|k| (k, m))).collect();
        assert_eq!(ws.keys().collect::<Vec<_>>(), gs.keys().collect::<Vec<_>>(), "{}: sessions", t.name);
        for (s, w) in &ws {
            assert!(w.frames == gs[s].frames, "{}: request frames of session {s} differ", t.name);
        }
    }
}
