//! Multi-part messages read straight into their reassembly buffers: a large part cut short
//! by a read goes on in that buffer, and the following parts are expected there too. These
//! tests feed streams in pieces (so that reads stop mid-part and mid-header) where other
//! frames interleave with the expected parts, as stock peers may send them, in both
//! directions, and check every payload byte for byte.

mod engine_util;
use engine_util::*;
use skynet_cluster::engine::{Address, CallOpts, Config};
use skynet_cluster::wire;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

/// The frames of `msgs` (each a list of frames), interleaved: one frame from each message
/// in turn, so that parts of one message alternate with other messages' frames.
fn interleave(msgs: Vec<Vec<Vec<u8>>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut its: Vec<_> = msgs.into_iter().map(|m| m.into_iter()).collect();
    loop {
        let mut any = false;
        for it in its.iter_mut() {
            if let Some(f) = it.next() {
                out.extend_from_slice(&f);
                any = true;
            }
        }
        if !any {
            return out;
        }
    }
}

/// Splits an encoded message into its frames.
fn frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (_, used) = wire::cut_frame(&bytes[at..]).unwrap();
        out.push(bytes[at..at + used].to_vec());
        at += used;
    }
    out
}

/// Writes `bytes` in pieces of varied sizes (some of a few bytes, to cut headers), with a
/// pause after each so that the reader sees them one read at a time.
fn write_in_pieces(s: &mut TcpStream, bytes: &[u8]) {
    let sizes = [40_000usize, 3, 9_000, 20_001, 5, 70_000, 1, 6, 33_000, 12_345, 2, 100_000];
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let n = sizes[i % sizes.len()].min(bytes.len() - at);
        s.write_all(&bytes[at..at + n]).unwrap();
        s.flush().unwrap();
        at += n;
        i += 1;
        std::thread::sleep(Duration::from_millis(3));
    }
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let mut b = vec![0u8; u16::from_be_bytes(h) as usize];
    s.read_exact(&mut b).unwrap();
    b
}

#[test]
fn interleaved_requests_cut_anywhere_reassemble() {
    let (_srv, saddr, _) = server(Config::default());
    let mut raw = TcpStream::connect(&saddr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let payloads: Vec<(u32, Vec<u8>)> = vec![
        (1, pattern(300_000, 1)),
        (2, pattern(100, 2)),
        (3, pattern(70_000, 3)),
        (4, pattern(1 << 20, 4)),
        (5, pattern(65_536, 5)),
    ];
    let mut msgs = Vec::new();
    for (session, p) in &payloads {
        let mut out = Vec::new();
        wire::encode_request(&mut out, wire::Address::Id(ECHO), *session, p, wire::RequestKind::Call).unwrap();
        msgs.push(frames(&out));
    }
    // First the 1 MiB one alone (parts in a row), then all of them interleaved.
    let mut alone = Vec::new();
    wire::encode_request(&mut alone, wire::Address::Id(ECHO), 9, &payloads[3].1, wire::RequestKind::Call).unwrap();
    let mut stream = alone;
    stream.extend_from_slice(&interleave(msgs));
    let writer = {
        let mut w = raw.try_clone().unwrap();
        std::thread::spawn(move || write_in_pieces(&mut w, &stream))
    };
    let mut want: HashMap<u32, Vec<u8>> = payloads.iter().cloned().collect();
    want.insert(9, payloads[3].1.clone());
    let mut joining: HashMap<u32, Vec<u8>> = HashMap::new();
    while !want.is_empty() {
        let f = read_frame(&mut raw);
        let (session, done) = match wire::decode_response(&f).unwrap() {
            wire::Response::Ok { session, payload } => (session, payload.to_vec()),
            wire::Response::MultiBegin { session, .. } => {
                joining.insert(session, Vec::new());
                continue;
            }
            wire::Response::MultiPart { session, data, last } => {
                joining.get_mut(&session).unwrap().extend_from_slice(data);
                if !last {
                    continue;
                }
                (session, joining.remove(&session).unwrap())
            }
            wire::Response::Error { session, msg } => {
                panic!("session {session}: {}", String::from_utf8_lossy(msg))
            }
        };
        let w = want.remove(&session).unwrap_or_else(|| panic!("unexpected answer for session {session}"));
        assert!(w == done, "session {session}: answer differs from the request ({} vs {} bytes)", done.len(), w.len());
    }
    writer.join().unwrap();
}

#[test]
fn interleaved_responses_cut_anywhere_reassemble() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let c = client(Config::default(), &addr);
    let h = c.handle();
    let sizes = [300_000usize, 100, 70_000, 1 << 20, 65_536, 32_769];
    let (tx, rx) = mpsc::channel();
    for (i, &n) in sizes.iter().enumerate() {
        let tx = tx.clone();
        let p = pattern(n, i as u8);
        h.call_with("srv", Address::Id(1), &p.clone(), CallOpts { timeout: GUARD, trace: None }, move |r| {
            let got = r.map(|r| r.as_slice() == p.as_slice());
            tx.send((i, got)).unwrap();
        })
        .unwrap();
    }
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // Read every request (sessions and payloads), then answer them all interleaved.
    let mut joining: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut reqs = Vec::new();
    while reqs.len() < sizes.len() {
        let f = read_frame(&mut s);
        match wire::decode_request(&f).unwrap() {
            wire::Request::Single { session, payload, .. } => reqs.push((session, payload.to_vec())),
            wire::Request::MultiHeader { session, .. } => {
                joining.insert(session, Vec::new());
            }
            wire::Request::Part { session, data, last } => {
                joining.get_mut(&session).unwrap().extend_from_slice(data);
                if last {
                    reqs.push((session, joining.remove(&session).unwrap()));
                }
            }
            wire::Request::Trace { .. } => {}
        }
    }
    let mut msgs = Vec::new();
    for (session, p) in &reqs {
        let mut out = Vec::new();
        wire::encode_response(&mut out, *session, Ok(p)).unwrap();
        msgs.push(frames(&out));
    }
    write_in_pieces(&mut s, &interleave(msgs));
    for _ in 0..sizes.len() {
        let (i, ok) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(ok.unwrap(), "answer {i} ({} bytes) differs", sizes[i]);
    }
}
