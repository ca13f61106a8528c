//! What a peer can make a node hold, and what it leaves unfinished (issue 12): node-wide
//! budgets filled by many links while a well-behaved link keeps getting answers, link
//! limits, timeouts for unfinished multi-part messages and idle links, heartbeats against
//! frozen and stock-like peers, link events, and stock's own answers to multi-part
//! anomalies (frames recorded from stock skynet).

mod engine_util;
use engine_util::*;
use parking_lot::Mutex;
use skynet_cluster::engine::{
    Address, CallError, Config, DownReason, Heartbeat, LinkDir, LinkEvent, Node, HEARTBEAT_NAME,
};
use skynet_cluster::{seri, wire};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn raw(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn call_frame(addr: u32, session: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_request(&mut out, wire::Address::Id(addr), session, payload, wire::RequestKind::Call).unwrap();
    out
}

/// True when the server closed `s` (EOF or reset) within the read timeout.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Still served: a call on the raw link is answered.
fn served(s: &mut TcpStream, session: u32) -> bool {
    s.write_all(&call_frame(ECHO, session, b"ping")).unwrap();
    match read_frame(s).map(|f| wire::decode_response(&f).map(|r| format!("{r:?}"))) {
        Some(Ok(r)) => r == format!("{:?}", wire::Response::Ok { session, payload: b"ping" }),
        _ => false,
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn multi_header(session: u32, total: u32, push: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let kind = if push { wire::RequestKind::Push } else { wire::RequestKind::Call };
    wire::encode_multi_header(&mut out, wire::Address::Id(ECHO), session, total as usize, kind).unwrap();
    out
}

fn part(session: u32, data: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_request_part(&mut out, session, data, last);
    out
}

#[test]
fn multipart_anomalies_get_the_frames_stock_answers_and_the_link_stays_up() {
    // Answer bodies recorded from stock skynet (f19d1605, clusteragent.lua) for the same
    // byte sequences, each on a fresh link, each link then still answering a call.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "part with no header, then last",
            [part(7, b"ab", false), part(7, b"cd", true)].concat(),
            "0700000000496e76616c6964206c6172676520726571",
        ),
        ("lone last part", part(8, b"ab", true), "0800000000496e76616c6964206e616d65"),
        (
            "duplicate header",
            [multi_header(9, 4, false), part(9, b"ab", false), multi_header(9, 4, false), part(9, b"cd", true)]
                .concat(),
            "0900000000496e76616c6964206c6172676520726571",
        ),
        (
            "over-long last part",
            [multi_header(11, 4, false), part(11, b"abcdef", true)].concat(),
            "0b00000000496e76616c6964206c6172676520726571",
        ),
        (
            "short last part",
            [multi_header(12, 4, false), part(12, b"ab", true)].concat(),
            "0c00000000496e76616c6964206c6172676520726571",
        ),
        (
            "overflow before the last part",
            [multi_header(13, 4, false), part(13, b"abcdef", false), part(13, b"x", true)].concat(),
            "0d00000000496e76616c6964206c6172676520726571",
        ),
        (
            "over-long push",
            [multi_header(14, 4, true), part(14, b"abcdef", true)].concat(),
            "0e00000000496e76616c6964206c6172676520726571",
        ),
        (
            "heartbeat probe",
            {
                let mut p = Vec::new();
                seri::encode_str_into(&mut p, HEARTBEAT_NAME.as_bytes()).unwrap();
                call_frame(0, 15, &p)
            },
            "0f000000006e616d65206e6f7420666f756e64",
        ),
    ];
    let (srv, addr, _) = server(Config::default());
    for (what, bytes, want) in &cases {
        let mut s = raw(&addr);
        s.write_all(bytes).unwrap();
        assert_eq!(read_frame(&mut s).unwrap(), hex(want), "{what}");
        assert!(served(&mut s, 100), "{what}: the link goes on as in stock");
    }
    let h = srv.health();
    assert_eq!(h.protocol_errors, 7, "every anomaly counted (the probe is not one)");
    assert_eq!(h.reassembly_bytes, 0, "spoiled messages hold nothing");
}

#[test]
fn reassembly_budget_refuses_the_message_that_asks_for_more_and_others_keep_working() {
    let cfg = Config { max_reassembly_total: 4 << 20, max_message: 2 << 20, ..Config::default() };
    let (srv, addr, _) = server(cfg);
    let c = client(Config::default(), &addr);
    // Two peers each declare 2 MiB and never finish: the budget is full.
    let mut hold = Vec::new();
    for _ in 0..2 {
        let mut s = raw(&addr);
        s.write_all(&[multi_header(1, 2 << 20, false), part(1, &[7; 32768], false)].concat()).unwrap();
        hold.push(s);
    }
    wait_until(|| srv.health().reassembly_bytes == 4 << 20);
    // A third is refused at once, with an error answer; its link stays up.
    let mut third = raw(&addr);
    third.write_all(&multi_header(5, 1 << 20, false)).unwrap();
    let f = read_frame(&mut third).unwrap();
    assert_eq!(
        wire::decode_response(&f).unwrap(),
        wire::Response::Error { session: 5, msg: b"overloaded: node reassembly budget is full" }
    );
    // Its parts are dropped without a second answer; the link serves the next call.
    for i in 0..32 {
        third.write_all(&part(5, &[1; 32768], i == 31)).unwrap();
    }
    assert!(served(&mut third, 6));
    assert!(srv.health().over_budget >= 1);
    // The well-behaved client is answered meanwhile (small messages need no reassembly)...
    for i in 0..20u8 {
        assert_eq!(c.call("srv", Address::Id(ECHO), &[i; 100], GUARD).unwrap(), vec![i; 100]);
    }
    // ...and a multi-part call of its own goes through once a hog leaves.
    drop(hold.pop());
    wait_until(|| srv.health().reassembly_bytes == 2 << 20);
    let big = pattern(1 << 20, 3);
    assert_eq!(c.call("srv", Address::Id(ECHO), &big, GUARD).unwrap(), big);
    assert_eq!(srv.health().reassembly_bytes, 2 << 20);
}

#[test]
fn send_budget_pauses_links_that_do_not_read_their_answers() {
    const BUDGET: usize = 4 << 20;
    let cfg = Config { max_send_total: BUDGET, ..Config::default() };
    let (srv, addr, _) = server(cfg);
    let c = client(Config::default(), &addr);
    // Six peers pipeline 40 calls of 1 MiB each to @echo and never read an answer.
    let stop = Arc::new(AtomicBool::new(false));
    let mut socks = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..6 {
        let s = raw(&addr);
        socks.push(s.try_clone().unwrap());
        let payload = pattern(1 << 20, 9);
        writers.push(std::thread::spawn(move || {
            let mut s = s;
            for i in 1..=40 {
                if s.write_all(&call_frame(ECHO, i, &payload)).is_err() {
                    return;
                }
            }
        }));
    }
    // Watch the total held, while the well-behaved client keeps calling.
    let peak = Arc::new(AtomicUsize::new(0));
    let (p, s2, st) = (peak.clone(), srv.handle(), stop.clone());
    let monitor = std::thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            p.fetch_max(s2.health().send_bytes, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let t0 = Instant::now();
    while srv.health().over_budget == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "the budget was never reached: {:?}", srv.health());
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..50u8 {
        assert_eq!(c.call("srv", Address::Id(ECHO), &[i; 1000], GUARD).unwrap(), vec![i; 1000]);
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    monitor.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    // Each paused link may have gone past its fair share by what one read brought in.
    assert!(peak <= BUDGET + 6 * (3 << 20), "{peak} bytes queued with a {BUDGET} budget");
    assert!(peak >= BUDGET, "the budget was reached ({peak})");
    for s in &socks {
        let _ = s.shutdown(Shutdown::Both);
    }
    for w in writers {
        w.join().unwrap();
    }
    // The peers go away (closing a socket with unread answers resets it): their links, and
    // everything queued for them, are released.
    drop(socks);
    let t0 = Instant::now();
    while !(srv.health().send_bytes == 0 && srv.health().links == 1) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "links of the peers that left are still held: {:?}",
            srv.health()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn link_limits_close_extra_connections_as_stocks_gate_does() {
    let (srv, addr, _) = server(Config { max_links: 3, ..Config::default() });
    let mut ok: Vec<TcpStream> = (0..3).map(|_| raw(&addr)).collect();
    for (i, s) in ok.iter_mut().enumerate() {
        assert!(served(s, i as u32 + 1));
    }
    let mut extra = raw(&addr);
    assert!(closed_by_server(&mut extra), "a fourth link is closed at once");
    assert_eq!(srv.health().refused_links, 1);
    assert!(served(&mut ok[0], 9), "the first ones keep working");
    drop(ok.pop());
    wait_until(|| srv.health().links == 2);
    let mut again = raw(&addr);
    assert!(served(&mut again, 1), "a place freed is taken again");
    // A listener's own bound (stock's maxclient), below the node's.
    let node = Node::new(Config::default()).unwrap();
    let a = node.listen_with("127.0.0.1:0", Some(2)).unwrap().to_string();
    node.register("echo", ECHO).unwrap();
    node.set_service(Arc::new(skynet_cluster::engine::FnService {
        call: |req: skynet_cluster::engine::Inbound<'_>, r: skynet_cluster::engine::Responder| r.ok(req.payload),
        push: |_req: skynet_cluster::engine::Inbound<'_>| {},
    }));
    let mut two: Vec<TcpStream> = (0..2).map(|_| raw(&a)).collect();
    assert!(served(&mut two[0], 1));
    let mut third = raw(&a);
    assert!(closed_by_server(&mut third));
    assert!(served(&mut two[1], 2));
    assert_eq!(node.health().refused_links, 1);
}

#[test]
fn unfinished_multipart_and_idle_links_expire() {
    let cfg = Config {
        multi_timeout: Some(Duration::from_millis(300)),
        idle_timeout: Some(Duration::from_millis(600)),
        ..Config::default()
    };
    let (srv, addr, _) = server(cfg);
    let t0 = Instant::now();
    let mut unfinished = raw(&addr);
    unfinished.write_all(&[multi_header(1, 1 << 20, false), part(1, &[1; 32768], false)].concat()).unwrap();
    let mut silent = raw(&addr);
    let mut busy = raw(&addr);
    // The busy one talks every 100 ms: never idle.
    for i in 1..=12 {
        assert!(served(&mut busy, i));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed_by_server(&mut unfinished));
    assert!(closed_by_server(&mut silent));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(served(&mut busy, 99), "a link that talks is never idle");
    let h = srv.health();
    assert_eq!(h.expired, 2);
    assert_eq!(h.reassembly_bytes, 0);
}

/// A TCP relay whose existing connections can be frozen (bytes held, nothing closed): what a
/// half-dead peer or a black-holed path looks like to the caller.
struct Relay {
    addr: String,
    frozen_below: Arc<AtomicUsize>,
    next: Arc<AtomicUsize>,
}

impl Relay {
    fn new(upstream: &str) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let frozen_below = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let (fb, nx, up) = (frozen_below.clone(), next.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let id = nx.fetch_add(1, Ordering::SeqCst);
                let u = TcpStream::connect(&up).unwrap();
                for (mut from, mut to) in [(c.try_clone().unwrap(), u.try_clone().unwrap()), (u, c)] {
                    let fb = fb.clone();
                    std::thread::spawn(move || {
                        let mut b = vec![0u8; 65536];
                        loop {
                            if id < fb.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                                continue;
                            }
                            match from.read(&mut b) {
                                Ok(0) | Err(_) => {
                                    let _ = to.shutdown(Shutdown::Both);
                                    return;
                                }
                                Ok(n) => {
                                    if id < fb.load(Ordering::SeqCst) {
                                        // Frozen meanwhile: these bytes are never delivered.
                                        continue;
                                    }
                                    if to.write_all(&b[..n]).is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            }
        });
        Relay { addr, frozen_below, next }
    }

    /// Freezes every connection made so far; new ones pass.
    fn freeze(&self) {
        self.frozen_below.store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

#[test]
fn heartbeat_declares_a_frozen_link_dead_and_the_next_call_reconnects() {
    let (srv, addr, _) = server(Config::default());
    let relay = Relay::new(&addr);
    let hb = Heartbeat { interval: Duration::from_millis(200), deadline: Duration::from_millis(300) };
    let events = Arc::new(Mutex::new(Vec::<LinkEvent>::new()));
    let c = client(Config { heartbeat: Some(hb), ..Config::default() }, &relay.addr);
    let ev = events.clone();
    c.set_link_hook(Some(Arc::new(move |e: &LinkEvent| ev.lock().push(e.clone()))));
    assert_eq!(c.call("srv", Address::Id(ECHO), b"a", GUARD).unwrap(), b"a");
    // Idle for several intervals: probes are answered (`name not found`), the link stays.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(c.link_up("srv"));
    assert_eq!(c.health().heartbeat_timeouts, 0);
    assert!(srv.inbound_stats().calls >= 3, "probes reached the server");
    // Frozen: a pending call with a long timeout fails as soon as the heartbeat says so.
    relay.freeze();
    let t0 = Instant::now();
    let r = c.call("srv", Address::Id(ECHO), b"b", Some(Duration::from_secs(60)));
    let took = t0.elapsed();
    match r {
        Err(CallError::LinkDown(why)) => assert!(why.contains("heartbeat"), "{why}"),
        other => panic!("want LinkDown(heartbeat), got {other:?}"),
    }
    assert!(took < Duration::from_secs(5), "declared dead after {took:?} (interval + deadline is 500 ms)");
    assert_eq!(c.health().heartbeat_timeouts, 1);
    wait_until(|| events.lock().iter().any(|e| matches!(e.down, Some(DownReason::Heartbeat(_)))));
    // The peer counts as a failed connect: calls fail at once, saying why, until the
    // backoff (100 ms) has passed; then a new link is opened (the relay passes new
    // connections) and answers.
    match c.call("srv", Address::Id(ECHO), b"c", GUARD) {
        Err(CallError::ConnectFailed(why)) => assert!(why.contains("heartbeat"), "{why}"),
        other => panic!("want ConnectFailed(heartbeat ...) within the backoff, got {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(c.call("srv", Address::Id(ECHO), b"d", GUARD).unwrap(), b"d");
}

#[test]
fn heartbeat_against_a_stock_like_peer_keeps_the_link_up() {
    // A peer that answers like stock's clusteragent: a name query for an unknown name gets
    // `name not found` (recorded from stock), a call to address 10 is echoed.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let probes = Arc::new(AtomicUsize::new(0));
    let pr = probes.clone();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        while let Some(f) = read_frame(&mut s) {
            let Ok(wire::Request::Single { addr, session, payload }) = wire::decode_request(&f) else { continue };
            let mut out = Vec::new();
            match addr {
                wire::Address::Id(0) => {
                    let (name, _) = seri::decode_str_prefix(payload).unwrap();
                    assert_eq!(name, HEARTBEAT_NAME.as_bytes());
                    pr.fetch_add(1, Ordering::SeqCst);
                    wire::encode_response(&mut out, session, Err(b"name not found")).unwrap();
                }
                _ => wire::encode_response(&mut out, session, Ok(payload)).unwrap(),
            }
            s.write_all(&out).unwrap();
        }
    });
    let c =
        client(Config { heartbeat: Some(Heartbeat::every(Duration::from_millis(100))), ..Config::default() }, &addr);
    assert_eq!(c.call("srv", Address::Id(10), b"x", GUARD).unwrap(), b"x");
    wait_until(|| probes.load(Ordering::SeqCst) >= 5);
    assert!(c.link_up("srv"));
    assert_eq!(c.health().heartbeat_timeouts, 0);
    let st = c.stats("srv").unwrap();
    assert_eq!((st.drops, st.errors, st.calls), (0, 0, 1), "probes are neither calls nor errors");
    assert_eq!(c.call("srv", Address::Id(10), b"y", GUARD).unwrap(), b"y");
}

#[test]
fn link_events_tell_up_and_down_on_both_sides() {
    let (srv, addr, _) = server(Config::default());
    let (stx, srx) = mpsc::channel::<LinkEvent>();
    let stx = Mutex::new(stx);
    srv.set_link_hook(Some(Arc::new(move |e: &LinkEvent| stx.lock().send(e.clone()).unwrap())));
    let (ctx, crx) = mpsc::channel::<LinkEvent>();
    let ctx = Mutex::new(ctx);
    let c = client(Config::default(), &addr);
    c.set_link_hook(Some(Arc::new(move |e: &LinkEvent| ctx.lock().send(e.clone()).unwrap())));
    let t = Duration::from_secs(10);
    assert_eq!(c.call("srv", Address::Id(ECHO), b"a", GUARD).unwrap(), b"a");
    let up = crx.recv_timeout(t).unwrap();
    assert_eq!((up.dir, up.node.as_str(), up.is_up()), (LinkDir::Outbound, "srv", true));
    assert_eq!(up.peer.unwrap().to_string(), addr);
    let sup = srx.recv_timeout(t).unwrap();
    assert_eq!((sup.dir, sup.is_up()), (LinkDir::Inbound, true));
    // A reload to another address takes the link down, with that reason.
    let (srv2, addr2, _) = server(Config::default());
    c.reload(&[("srv", Some(&addr2))]);
    let down = crx.recv_timeout(t).unwrap();
    assert_eq!(down.down, Some(DownReason::Reload));
    let sdown = srx.recv_timeout(t).unwrap();
    assert_eq!((sdown.dir, sdown.down), (LinkDir::Inbound, Some(DownReason::PeerClosed)));
    assert_eq!(c.call("srv", Address::Id(ECHO), b"b", GUARD).unwrap(), b"b");
    assert!(crx.recv_timeout(t).unwrap().is_up());
    // The peer goes away: down, and the text says why.
    drop(srv2);
    let gone = crx.recv_timeout(t).unwrap();
    assert!(!gone.is_up());
    assert!(gone.to_string().starts_with("link to [srv]"), "{gone}");
}

#[test]
fn reserved_names_cannot_be_registered() {
    let n = Node::new(Config::default()).unwrap();
    assert!(matches!(n.register("__skc.heartbeat", 1), Err(CallError::Invalid(_))));
    assert!(matches!(n.register("__skc.anything", 1), Err(CallError::Invalid(_))));
    assert!(n.register("skc.fine", 1).is_ok());
}
