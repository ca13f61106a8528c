//! Shared helpers for the engine tests: a test service and node pairs over 127.0.0.1.
#![allow(dead_code)]

use parking_lot::Mutex;
use skynet_cluster::engine::{Address, Config, FnService, Handle, Inbound, Node, Responder};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Generous hang guard: tests never depend on it elapsing.
pub const GUARD: Option<Duration> = Some(Duration::from_secs(30));

pub const ECHO: u32 = 1;
pub const SINK: u32 = 2;
pub const HOLD: u32 = 3;
pub const FAIL: u32 = 4;
pub const DROP: u32 = 5;
pub const LATER: u32 = 6;

/// What the test service saw.
#[derive(Default)]
pub struct Seen {
    pub pushes: AtomicU64,
    pub push_bytes: AtomicU64,
    pub traces: Mutex<Vec<Vec<u8>>>,
    pub held: Mutex<Vec<Responder>>,
    pub names: Mutex<Vec<Vec<u8>>>,
}

/// A server node on 127.0.0.1:0 with: `@echo` (1) echoes; `@sink` (2) counts pushes and a
/// call answers the count as decimal text; 3 holds the responder forever (timeouts); 4
/// answers an error `boom`; 5 drops the responder; 6 answers from another thread; names
/// other than `@...` echo too (and are recorded).
pub fn server(cfg: Config) -> (Node, String, Arc<Seen>) {
    let node = Node::new(cfg).unwrap();
    let addr = node.listen("127.0.0.1:0").unwrap();
    node.register("echo", ECHO).expect("echo is not reserved");
    node.register("sink", SINK).expect("sink is not reserved");
    let seen = Arc::new(Seen::default());
    let s1 = seen.clone();
    let s2 = seen.clone();
    node.set_service(Arc::new(FnService {
        call: move |req: Inbound<'_>, r: Responder| {
            if let Some(t) = req.trace {
                s1.traces.lock().push(t.to_vec());
            }
            match req.addr {
                Address::Id(ECHO) => r.ok(req.payload),
                Address::Id(SINK) => r.ok(s1.pushes.load(Ordering::SeqCst).to_string().as_bytes()),
                Address::Id(HOLD) => s1.held.lock().push(r),
                Address::Id(FAIL) => r.error(b"boom"),
                Address::Id(DROP) => drop(r),
                Address::Id(LATER) => {
                    let p = req.payload.to_vec();
                    std::thread::spawn(move || r.ok(&p));
                }
                Address::Name(n) => {
                    s1.names.lock().push(n.to_vec());
                    r.ok(req.payload)
                }
                Address::Id(_) => r.error(b"no such service"),
            }
        },
        push: move |req: Inbound<'_>| {
            s2.push_bytes.fetch_add(req.payload.len() as u64, Ordering::SeqCst);
            s2.pushes.fetch_add(1, Ordering::SeqCst);
        },
    }));
    (node, addr.to_string(), seen)
}

/// A client node whose map has `srv` -> `addr`.
pub fn client(cfg: Config, addr: &str) -> Node {
    let node = Node::new(cfg).unwrap();
    node.reload(&[("srv", Some(addr))]);
    node
}

pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Waits (hang guard only) until `f` is true.
pub fn wait_until(mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(30), "condition not reached");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn handle(n: &Node) -> Handle {
    n.handle()
}

/// Reads one frame (2-byte big-endian length, body) from a plain blocking socket; the body,
/// or `None` at EOF or on an error (a closed link, a read timeout).
pub fn read_frame(s: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    let mut b = vec![0u8; u16::from_be_bytes(h) as usize];
    s.read_exact(&mut b).ok()?;
    Some(b)
}
