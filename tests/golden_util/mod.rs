//! Shared reading of the golden recordings (`../shared/golden`, or `$SKC_GOLDEN`) for the
//! integration tests: JSONL files, hex, and the frame transcripts of two stock nodes.
//! Each test file that needs it says `mod golden_util;`.
#![allow(dead_code)]

use serde_json::Value as J;
use skynet_cluster::wire;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

/// The golden directory: `$SKC_GOLDEN`, else `../shared/golden` beside the crate.
pub fn golden() -> PathBuf {
    match std::env::var_os("SKC_GOLDEN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/golden"),
    }
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Every non-empty line of a JSONL file; a missing file fails the test (never a skip).
pub fn read_jsonl(path: &Path) -> Vec<J> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("golden data {}: {e} (set SKC_GOLDEN)", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("golden line is JSON"))
        .collect()
}

/// One recorded connection between two stock nodes.
pub struct Transcript {
    pub name: String,
    /// Line 1: the scenario and its ops.
    pub header: J,
    /// Whole frames, length prefix included, client -> server, in order.
    pub c2s: Vec<Vec<u8>>,
    /// Whole frames, server -> client, in order.
    pub s2c: Vec<Vec<u8>>,
}

/// All `transcripts/*.jsonl`, sorted by name.
pub fn load() -> Vec<Transcript> {
    let dir = golden().join("transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("golden transcripts at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 21, "expected the 21 recorded transcripts");
    files
        .into_iter()
        .map(|p| {
            let mut lines = read_jsonl(&p).into_iter();
            let header = lines.next().expect("scenario header");
            let (mut c2s, mut s2c) = (Vec::new(), Vec::new());
            for v in lines {
                let f = unhex(v["hex"].as_str().unwrap());
                match v["dir"].as_str().unwrap() {
                    "c2s" => c2s.push(f),
                    "s2c" => s2c.push(f),
                    d => panic!("unknown dir {d}"),
                }
            }
            Transcript { name: p.file_name().unwrap().to_string_lossy().into(), header, c2s, s2c }
        })
        .collect()
}

/// A whole frame's body (after the 2-byte length prefix).
pub fn body(f: &[u8]) -> &[u8] {
    &f[2..]
}

/// Server frames grouped by session, in order.
pub fn by_session(frames: &[Vec<u8>]) -> BTreeMap<u32, Vec<Vec<u8>>> {
    let mut m: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    for f in frames {
        m.entry(wire::decode_response(body(f)).unwrap().session()).or_default().push(f.clone());
    }
    m
}

/// The whole payload one session's response frames carry: Ok(payload) or Err(text).
pub fn response_payload(frames: &[Vec<u8>]) -> Result<Vec<u8>, Vec<u8>> {
    let mut out = Vec::new();
    for f in frames {
        match wire::decode_response(body(f)).unwrap() {
            wire::Response::Ok { payload, .. } => return Ok(payload.to_vec()),
            wire::Response::Error { msg, .. } => return Err(msg.to_vec()),
            wire::Response::MultiBegin { .. } => {}
            wire::Response::MultiPart { data, .. } => out.extend_from_slice(data),
        }
    }
    Ok(out)
}

/// One client message: a request or push (single or multi-part, its trace frame first).
#[derive(Debug, Clone)]
pub struct Msg {
    pub frames: Vec<Vec<u8>>,
    pub session: u32,
    pub push: bool,
    pub payload: Vec<u8>,
}

/// Groups a client frame stream into messages, in the order each message completed.
pub fn messages(frames: &[Vec<u8>]) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut trace: Option<Vec<u8>> = None;
    let mut open: HashMap<u32, Msg> = HashMap::new();
    for f in frames {
        match wire::decode_request(body(f)).unwrap() {
            wire::Request::Trace { .. } => trace = Some(f.clone()),
            wire::Request::Single { session, payload, .. } => {
                let mut fr: Vec<Vec<u8>> = trace.take().into_iter().collect();
                fr.push(f.clone());
                out.push(Msg { frames: fr, session, push: session == 0, payload: payload.to_vec() });
            }
            wire::Request::MultiHeader { session, push, .. } => {
                let mut fr: Vec<Vec<u8>> = trace.take().into_iter().collect();
                fr.push(f.clone());
                open.insert(session, Msg { frames: fr, session, push, payload: Vec::new() });
            }
            wire::Request::Part { session, data, last } => {
                let m = open.get_mut(&session).expect("part after its header");
                m.frames.push(f.clone());
                m.payload.extend_from_slice(data);
                if last {
                    out.push(open.remove(&session).unwrap());
                }
            }
        }
    }
    assert!(open.is_empty(), "every multi-part message completes");
    out
}

/// Reads one whole frame (prefix included) from a blocking socket.
pub fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).expect("frame (hang guard: 30 s)");
    let mut f = vec![0u8; 2 + u16::from_be_bytes(h) as usize];
    f[..2].copy_from_slice(&h);
    s.read_exact(&mut f[2..]).unwrap();
    f
}

/// Plays the recorded client frames of `t` (interleavings included) into the server at `addr`
/// and checks its answers against the recorded server frames, per session and byte for byte
/// (stock answers in completion order, so the order across sessions is not compared), and that
/// nothing more arrives.
pub fn check_stock_client_against(t: &Transcript, addr: impl ToSocketAddrs) {
    let want = by_session(&t.s2c);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for f in &t.c2s {
        s.write_all(f).unwrap();
    }
    let got: Vec<Vec<u8>> = (0..t.s2c.len()).map(|_| read_frame(&mut s)).collect();
    let got = by_session(&got);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{}: sessions", t.name);
    for (session, frames) in &want {
        assert!(got[session] == *frames, "{}: response frames of session {session} differ", t.name);
    }
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let mut b = [0u8; 1];
    assert!(s.read(&mut b).is_err(), "{}: extra bytes", t.name);
}

/// The nodename and the original tag inside the recorded trace frame of `msgs` (stock writes
/// `(<nodename>-<node>-<session>)<tag>`), if one was recorded.
pub fn recorded_trace(msgs: &[Msg], node: &str) -> (Option<String>, Option<Vec<u8>>) {
    let (mut nodename, mut tag) = (None, None);
    for m in msgs {
        if let wire::Request::Trace { tag: full } = wire::decode_request(body(&m.frames[0])).unwrap() {
            let full = String::from_utf8(full.to_vec()).unwrap();
            let close = full.find(')').unwrap();
            let inner = &full[1..close];
            let cut = inner.find(&format!("-{node}-")).unwrap();
            nodename = Some(inner[..cut].to_string());
            tag = Some(full.as_bytes()[close + 1..].to_vec());
        }
    }
    (nodename, tag)
}

/// A fake stock server on a free loopback port: it answers each request (single, or multi-part
/// once its last part is in) with the recorded server frames of its session, until
/// `want_frames` frames have arrived. Returns its address and the frames it received.
pub fn fake_stock_server(t: &Transcript, want_frames: usize) -> (String, JoinHandle<Vec<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let answers = by_session(&t.s2c);
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut frames = Vec::new();
        let mut open = HashSet::new();
        while frames.len() < want_frames {
            let f = read_frame(&mut s);
            let done = match wire::decode_request(body(&f)).unwrap() {
                wire::Request::Single { session, .. } => Some(session),
                wire::Request::MultiHeader { session, .. } => {
                    open.insert(session);
                    None
                }
                wire::Request::Part { session, last: true, .. } => open.remove(&session).then_some(session),
                _ => None,
            };
            frames.push(f);
            if let Some(session) = done {
                for a in answers.get(&session).into_iter().flatten() {
                    s.write_all(a).unwrap();
                }
            }
        }
        frames
    });
    (addr, server)
}
