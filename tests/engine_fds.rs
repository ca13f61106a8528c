//! A closed link releases its socket at once, whatever the host still holds for it
//! (issue 12): accepted links whose requests are still in service, and outbound links
//! nobody calls again. Its own test binary, so that no other test opens descriptors
//! while these count them.

mod engine_util;
use engine_util::*;
use parking_lot::Mutex;
use skynet_cluster::engine::{Address, Config, LinkEvent, Node};
use skynet_cluster::wire;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tests of this file count the process's descriptors: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("procfs").count()
}

/// Waits until at most `want` descriptors are open; fails after `within`.
fn fds_back_to(want: usize, within: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let n = open_fds();
        if n <= want {
            return;
        }
        assert!(start.elapsed() < within, "{what}: {n} descriptors open after {within:?}, want <= {want}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn closed_accepted_links_release_their_sockets_while_their_requests_are_in_service() {
    let _g = SERIAL.lock();
    let (srv, addr, seen) = server(Config::default());
    // Let the node's threads and listener settle before counting.
    let c = client(Config::default(), &addr);
    assert_eq!(c.call("srv", Address::Id(ECHO), b"a", GUARD).unwrap(), b"a");
    let base = open_fds();
    // 300 peers, each with one call to a handler that never answers, each then gone.
    let mut peers = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&addr).unwrap();
        let mut out = Vec::new();
        wire::encode_request(&mut out, wire::Address::Id(HOLD), 1, b"x", wire::RequestKind::Call).unwrap();
        s.write_all(&out).unwrap();
        peers.push(s);
    }
    wait_until(|| seen.held.lock().len() == 300);
    assert!(open_fds() >= base + 600, "300 client sockets and 300 accepted ones are open");
    drop(peers);
    fds_back_to(base + 2, Duration::from_secs(2), "after 300 peers closed");
    assert_eq!(srv.health().links, 1, "only the well-behaved client's link is left");
    // The answers that come now have nowhere to go: dropped and counted.
    for r in seen.held.lock().drain(..) {
        r.ok(b"late");
    }
    assert_eq!(srv.health().late_answers, 300);
    // A responder dropped unanswered after its link closed answered nothing: not counted.
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut out = Vec::new();
    wire::encode_request(&mut out, wire::Address::Id(HOLD), 1, b"x", wire::RequestKind::Call).unwrap();
    s.write_all(&out).unwrap();
    wait_until(|| seen.held.lock().len() == 1);
    drop(s);
    wait_until(|| srv.health().links == 1);
    seen.held.lock().clear();
    assert_eq!(srv.health().late_answers, 300);
    // The node still serves, old link and new.
    assert_eq!(c.call("srv", Address::Id(ECHO), b"b", GUARD).unwrap(), b"b");
    let c2 = client(Config::default(), &addr);
    assert_eq!(c2.call("srv", Address::Id(ECHO), b"c", GUARD).unwrap(), b"c");
}

#[test]
fn a_dropped_outbound_link_releases_its_socket_without_another_call() {
    let _g = SERIAL.lock();
    let (srv, addr, _) = server(Config::default());
    let events = Arc::new(Mutex::new(Vec::<LinkEvent>::new()));
    let c = Node::new(Config::default()).unwrap();
    let ev = events.clone();
    c.set_link_hook(Some(Arc::new(move |e: &LinkEvent| ev.lock().push(e.clone()))));
    let before = open_fds();
    c.reload(&[("srv", Some(&addr))]);
    assert_eq!(c.call("srv", Address::Id(ECHO), b"a", GUARD).unwrap(), b"a");
    drop(srv);
    wait_until(|| events.lock().iter().any(|e| !e.is_up()));
    // Both ends were in this process; the client's end must go without a new call.
    fds_back_to(before, Duration::from_secs(2), "after the server went away");
    assert!(!c.link_up("srv"));
}
