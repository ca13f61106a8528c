//! TLS between native nodes (issue 14, part 3): the hello, mutual authentication with a
//! cluster CA, the node name in the certificate, plain text with stock peers in `prefer`,
//! refusals in `require`, over real sockets on loopback.
//!
//! * a relay between two native nodes records every byte: no payload in plain text with TLS
//!   (and, as a control, the payload in plain text without it);
//! * a fake stock peer (the protocol by hand) and a raw plain-text sender, both ways, in
//!   `prefer` and `require`;
//! * refusals (another CA, a certificate naming another node, expired ones, garbage instead
//!   of a ClientHello, a hello followed by a disconnect or by silence): counted, logged, no
//!   descriptor left behind, other links unaffected;
//! * a rolling upgrade off -> prefer -> require over three nodes, and certificates reloaded
//!   without a restart.
#![cfg(feature = "tls")]

mod engine_util;
mod tls_util;
use engine_util::*;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use skynet_cluster::engine::tls::{HELLO_ANSWER, HELLO_NAME};
use skynet_cluster::engine::{
    Address, CallError, Config, FnService, Inbound, LogHook, LogRecord, Node, Responder, TlsConfig, TlsMode,
};
use skynet_cluster::wire;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_util::*;

/// The session the hello travels on (the engine's `HELLO_SESSION`).
const HELLO_SESSION: u32 = 0x7fff_ffff;

/// Tests that count the process's descriptors hold this alone; every other test shares it,
/// so that nothing opens or closes descriptors while they count.
static FDS: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    FDS.read()
}

fn alone() -> RwLockWriteGuard<'static, ()> {
    FDS.write()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("procfs").count()
}

/// Waits (hang guard only) until at most `base` descriptors are open.
fn fds_back_to(base: usize, what: &str) {
    let start = Instant::now();
    loop {
        let n = open_fds();
        if n <= base {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{what}: {n} descriptors open, want <= {base}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn cfg_tls(ca: &Ca, mode: TlsMode, node: &str) -> Config {
    Config { tls: ca.config(mode, node), ..Config::default() }
}

fn cfg_with(tls: TlsConfig) -> Config {
    Config { tls, ..Config::default() }
}

/// The log lines a node writes, and the hook that collects them.
fn log_lines() -> (Arc<Mutex<Vec<String>>>, LogHook) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, LogHook::new(move |r: &LogRecord<'_>| s.lock().push(r.text.to_string())))
}

/// `marker` repeated over `n` bytes.
fn marked(marker: &[u8], n: usize) -> Vec<u8> {
    marker.iter().copied().cycle().take(n).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What calls carry through the relay, and what they are answered with.
const REQ: &[u8] = b"<REQ:7f3a:skc-tls-relay-marker>";
const ANS: &[u8] = b"<ANS:c41e:skc-tls-relay-marker>";

// ---------------------------------------------------------------------------------------
// A relay that records every byte
// ---------------------------------------------------------------------------------------

/// A TCP proxy for one connection to `to`, recording every byte each way.
struct Relay {
    addr: String,
    /// Client -> server.
    up: Arc<Mutex<Vec<u8>>>,
    /// Server -> client.
    down: Arc<Mutex<Vec<u8>>>,
}

fn relay(to: &str) -> Relay {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (up, down) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let (u, d, to) = (up.clone(), down.clone(), to.to_string());
    std::thread::spawn(move || {
        let (a, _) = l.accept().unwrap();
        drop(l);
        let b = TcpStream::connect(&to).unwrap();
        let _ = (a.set_nodelay(true), b.set_nodelay(true));
        pump(a.try_clone().unwrap(), b.try_clone().unwrap(), u);
        pump(b, a, d);
    });
    Relay { addr, up, down }
}

/// Copies `from` to `to` until EOF, recording what passes before forwarding it.
fn pump(mut from: TcpStream, mut to: TcpStream, rec: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            rec.lock().extend_from_slice(&buf[..n]);
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// What the relay saw, and the TLS links the client and the server counted.
struct Relayed {
    up: Vec<u8>,
    down: Vec<u8>,
    tls_links: (u64, u64),
}

/// A client and a server both in `mode`, through a relay: a 64-byte and a 1 MiB call made of
/// [`REQ`], each answered with as many bytes of [`ANS`].
fn through_relay(mode: TlsMode) -> Relayed {
    let dir = tempdir(&format!("relay-{}", mode.as_str()));
    let ca = Ca::new(&dir, "ca");
    let (srv, addr, _) = server(cfg_tls(&ca, mode, "srv"));
    srv.set_service(Arc::new(FnService {
        call: |req: Inbound<'_>, r: Responder| r.ok(&marked(ANS, req.payload.len())),
        push: |_: Inbound<'_>| {},
    }));
    let relay = relay(&addr);
    let cli = client(cfg_tls(&ca, mode, "cli"), &relay.addr);
    for n in [64, 1 << 20] {
        let r = cli.call("srv", Address::Name(b"@echo"), &marked(REQ, n), GUARD).expect("a call through the relay");
        assert!(r == marked(ANS, n), "the answer of {n} bytes differs");
    }
    let (up, down) = (relay.up.lock().clone(), relay.down.lock().clone());
    assert!(up.len() > 1 << 20 && down.len() > 1 << 20, "both calls went through the relay");
    Relayed { up, down, tls_links: (cli.health().tls_links, srv.health().tls_links) }
}

fn assert_no_marker(r: &Relayed) {
    for (dir, bytes) in [("client -> server", &r.up), ("server -> client", &r.down)] {
        for m in [REQ, ANS] {
            assert!(!contains(bytes, m), "{} in plain text {dir}", String::from_utf8_lossy(m));
        }
    }
}

#[test]
fn relay_between_prefer_nodes_sees_no_payload_in_plain_text() {
    let _g = shared();
    let r = through_relay(TlsMode::Prefer);
    assert_eq!(r.tls_links, (1, 1), "one TLS link, counted on both sides");
    assert_no_marker(&r);
}

#[test]
fn relay_between_require_nodes_sees_no_payload_in_plain_text() {
    let _g = shared();
    let r = through_relay(TlsMode::Require);
    assert_eq!(r.tls_links, (1, 1), "one TLS link, counted on both sides");
    assert_no_marker(&r);
}

/// The control of the two above: the same relay and check find the payload without TLS.
#[test]
fn relay_between_nodes_with_tls_off_sees_the_payload_in_plain_text() {
    let _g = shared();
    let r = through_relay(TlsMode::Off);
    assert_eq!(r.tls_links, (0, 0));
    assert!(contains(&r.up, REQ), "the request in plain text client -> server");
    assert!(contains(&r.down, ANS), "the answer in plain text server -> client");
}

// ---------------------------------------------------------------------------------------
// A fake stock peer, and a raw plain-text sender
// ---------------------------------------------------------------------------------------

/// `@__skc.tls`, as it travels.
fn hello_addr() -> Vec<u8> {
    [b"@", HELLO_NAME.as_bytes()].concat()
}

/// The hello frame a connecting native node sends.
fn hello_frame() -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_request(&mut out, wire::Address::Name(&hello_addr()), HELLO_SESSION, b"", wire::RequestKind::Call)
        .unwrap();
    out
}

/// A request the fake stock peer received.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Got {
    addr: Vec<u8>,
    session: u32,
    payload: Vec<u8>,
}

/// A fake stock node for one connection, serving it as stock's clusteragent does, by hand
/// with the wire codec: `@__skc.tls`, a name it does not know, is answered with the error
/// `Invalid name`; every other call is echoed.
struct Stock {
    addr: String,
    got: Arc<Mutex<Vec<Got>>>,
    /// Every byte received.
    raw: Arc<Mutex<Vec<u8>>>,
    /// The connection reached EOF (or failed).
    closed: Arc<AtomicBool>,
}

fn fake_stock() -> Stock {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let stock = Stock {
        addr,
        got: Arc::new(Mutex::new(Vec::new())),
        raw: Arc::new(Mutex::new(Vec::new())),
        closed: Arc::new(AtomicBool::new(false)),
    };
    let (got, raw, closed) = (stock.got.clone(), stock.raw.clone(), stock.closed.clone());
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        drop(l);
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            raw.lock().extend_from_slice(&chunk[..n]);
            buf.extend_from_slice(&chunk[..n]);
            let mut used = 0;
            while let Some((body, len)) = wire::cut_frame(&buf[used..]) {
                used += len;
                let Ok(wire::Request::Single { addr, session, payload }) = wire::decode_request(body) else {
                    panic!("the fake stock peer takes single-frame requests only: {body:?}");
                };
                let addr = match addr {
                    wire::Address::Name(n) => n.to_vec(),
                    wire::Address::Id(id) => format!(":{id:08x}").into_bytes(),
                };
                let answer = if addr == hello_addr() { Err(&b"Invalid name"[..]) } else { Ok(payload) };
                let mut out = Vec::new();
                if session != 0 {
                    wire::encode_response(&mut out, session, answer).unwrap();
                }
                got.lock().push(Got { addr, session, payload: payload.to_vec() });
                if s.write_all(&out).is_err() {
                    break;
                }
            }
            buf.drain(..used);
        }
        closed.store(true, Ordering::SeqCst);
    });
    stock
}

#[test]
fn prefer_goes_on_in_plain_text_with_a_stock_peer() {
    let _g = shared();
    let dir = tempdir("stock-prefer");
    let ca = Ca::new(&dir, "ca");
    let stock = fake_stock();
    let cli = client(cfg_tls(&ca, TlsMode::Prefer, "cli"), &stock.addr);
    assert_eq!(cli.call("srv", Address::Name(b"@echo"), b"as stock", GUARD), Ok(b"as stock".to_vec()));
    assert_eq!(cli.call("srv", Address::Name(b"@echo"), b"again", GUARD), Ok(b"again".to_vec()));
    let got = stock.got.lock().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!((&got[0].addr, got[0].session), (&hello_addr(), HELLO_SESSION), "the hello comes first");
    assert_eq!(got[1], Got { addr: b"@echo".to_vec(), session: 1, payload: b"as stock".to_vec() });
    assert_eq!(got[2], Got { addr: b"@echo".to_vec(), session: 2, payload: b"again".to_vec() });
    let h = cli.health();
    assert_eq!((h.tls_links, h.refused_plain, h.tls_failures), (0, 0, 0));
}

#[test]
fn require_refuses_a_stock_peer_at_once_having_sent_it_only_the_hello() {
    let _g = shared();
    let dir = tempdir("stock-require");
    let ca = Ca::new(&dir, "ca");
    let stock = fake_stock();
    let cli = client(cfg_tls(&ca, TlsMode::Require, "cli"), &stock.addr);
    let t0 = Instant::now();
    let r = cli.call("srv", Address::Name(b"@echo"), &marked(REQ, 64), Some(Duration::from_secs(20)));
    let Err(CallError::LinkDown(why)) = &r else { panic!("want LinkDown, got {r:?}") };
    assert!(why.contains("does not speak TLS") && why.contains("Invalid name"), "{why}");
    assert!(t0.elapsed() < Duration::from_secs(10), "refused at once, not at the call's timeout");
    assert_eq!(cli.health().refused_plain, 1);
    wait_until(|| stock.closed.load(Ordering::SeqCst));
    let got = stock.got.lock().clone();
    assert_eq!(got.len(), 1, "only the hello: {got:?}");
    assert_eq!((&got[0].addr, got[0].session), (&hello_addr(), HELLO_SESSION));
    let raw = stock.raw.lock().clone();
    let (_, len) = wire::cut_frame(&raw).expect("the hello");
    assert_eq!(len, raw.len(), "nothing after the hello");
    assert!(!contains(&raw, REQ));
}

/// A plain blocking connection to `addr` (reads give up after 10 s).
fn connect_raw(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One call on a raw link: the answer's result (payload or error text), or `None` when the
/// server closed the connection.
fn raw_call(
    s: &mut TcpStream,
    addr: wire::Address<'_>,
    session: u32,
    payload: &[u8],
) -> Option<Result<Vec<u8>, Vec<u8>>> {
    let mut out = Vec::new();
    wire::encode_request(&mut out, addr, session, payload, wire::RequestKind::Call).unwrap();
    s.write_all(&out).ok()?;
    let f = read_frame(s)?;
    match wire::decode_response(&f).unwrap() {
        wire::Response::Ok { session: got, payload } if got == session => Some(Ok(payload.to_vec())),
        wire::Response::Error { session: got, msg } if got == session => Some(Err(msg.to_vec())),
        other => panic!("unexpected {other:?}"),
    }
}

/// Reads until the server closes the connection; fails if it does not within the socket's
/// read timeout.
fn wait_closed(s: &mut TcpStream) {
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server did not close the connection")
            }
            Err(_) => return,
        }
    }
}

#[test]
fn prefer_serves_a_plain_text_sender_as_stock_does() {
    let _g = shared();
    let dir = tempdir("plain-prefer");
    let ca = Ca::new(&dir, "ca");
    let (srv, addr, _) = server(cfg_tls(&ca, TlsMode::Prefer, "srv"));
    let mut s = connect_raw(&addr);
    // The first request a multi-part one (200 KiB, to `@sink`, which answers its push count).
    assert_eq!(raw_call(&mut s, wire::Address::Name(b"@sink"), 1, &pattern(200 << 10, 3)), Some(Ok(b"0".to_vec())));
    assert_eq!(raw_call(&mut s, wire::Address::Name(b"@echo"), 2, b"stock"), Some(Ok(b"stock".to_vec())));
    assert_eq!(raw_call(&mut s, wire::Address::Id(ECHO), 3, b"by id"), Some(Ok(b"by id".to_vec())));
    let h = srv.health();
    assert_eq!((h.links, h.tls_links, h.refused_plain, h.tls_failures), (1, 0, 0, 0));
}

#[test]
fn require_answers_a_plain_text_call_tls_required_and_closes_while_tls_clients_go_on() {
    let _g = shared();
    let dir = tempdir("plain-require");
    let ca = Ca::new(&dir, "ca");
    let (lines, log) = log_lines();
    let (srv, addr, seen) = server(Config { log: Some(log), ..cfg_tls(&ca, TlsMode::Require, "srv") });
    let cli = client(cfg_tls(&ca, TlsMode::Require, "cli"), &addr);
    assert_eq!(cli.call("srv", Address::Id(ECHO), b"first", GUARD), Ok(b"first".to_vec()));
    // A TLS client calls on and on while plain-text senders are refused.
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let caller = {
        let (h, stop, calls) = (cli.handle(), stop.clone(), calls.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let p = pattern(1000, calls.load(Ordering::SeqCst) as u8);
                assert_eq!(h.call("srv", Address::Id(ECHO), &p, GUARD), Ok(p));
                calls.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    for i in 0..3 {
        let mut s = connect_raw(&addr);
        let r = raw_call(&mut s, wire::Address::Name(b".plain"), 1, &marked(REQ, 64));
        let Some(Err(msg)) = &r else { panic!("want an error answer, got {r:?}") };
        assert!(String::from_utf8_lossy(msg).contains("tls required"), "{:?}", String::from_utf8_lossy(msg));
        wait_closed(&mut s);
        wait_until(|| srv.health().refused_plain == i + 1);
    }
    let before = calls.load(Ordering::SeqCst);
    wait_until(|| calls.load(Ordering::SeqCst) > before + 10);
    stop.store(true, Ordering::SeqCst);
    caller.join().expect("every call of the TLS client succeeded");
    assert!(seen.names.lock().is_empty(), "no refused request reached the service");
    let h = srv.health();
    assert_eq!((h.tls_links, h.tls_failures), (1, 0), "the TLS client's link was never remade");
    wait_until(|| srv.health().links == 1);
    assert!(lines.lock().iter().any(|l| l.contains("plain-text peer") && l.contains("refused")), "{:?}", lines.lock());
}

// ---------------------------------------------------------------------------------------
// Refusals: counted, logged, no descriptor left behind, other links unaffected
// ---------------------------------------------------------------------------------------

/// A server in `require` (its log collected) and a good client whose TLS link to it is up;
/// the descriptor count with both in place.
struct Fixture {
    dir: TempDir,
    ca: Ca,
    srv: Node,
    addr: String,
    /// The good client, and the name its map gives the server.
    good: Node,
    good_name: String,
    lines: Arc<Mutex<Vec<String>>>,
    base: usize,
}

impl Fixture {
    /// `srv_cert`: the node name the server's certificate carries (the good client's map
    /// uses it). `connect_timeout`: the server's.
    fn new(tag: &str, srv_cert: &str, connect_timeout: Duration) -> Fixture {
        let dir = tempdir(tag);
        let ca = Ca::new(&dir, "ca");
        let (lines, log) = log_lines();
        let tls = ca.trusting(TlsMode::Require, ca.node("srv", srv_cert));
        let (srv, addr, _) = server(Config { tls, connect_timeout, log: Some(log), ..Config::default() });
        let good = Node::new(cfg_tls(&ca, TlsMode::Require, "good")).unwrap();
        good.reload(&[(srv_cert, Some(addr.as_str()))]);
        let mut f = Fixture { dir, ca, srv, addr, good, good_name: srv_cert.to_string(), lines, base: 0 };
        f.good_calls();
        f.base = open_fds();
        f
    }

    fn good_calls(&self) {
        let r = self.good.call(&self.good_name, Address::Id(ECHO), b"fine", GUARD);
        assert_eq!(r, Ok(b"fine".to_vec()), "the good client calls");
    }

    /// After a refusal: the good client still calls on its link, the server holds only that
    /// link, and the descriptors are back to the baseline.
    fn unaffected(&self) {
        self.good_calls();
        assert_eq!(self.good.health().tls_links, 1, "the good client's link was never remade");
        wait_until(|| self.srv.health().links == 1);
        fds_back_to(self.base, "after the refusal");
    }

    /// The server's log lines about the closing of accepted links.
    fn closes(&self) -> Vec<String> {
        self.lines.lock().iter().filter(|l| l.starts_with("accepted link")).cloned().collect()
    }

    /// A client node (its log collected) with `tls`, whose map calls the server `srv`.
    fn client(&self, tls: TlsConfig) -> (Node, Arc<Mutex<Vec<String>>>) {
        let (lines, log) = log_lines();
        let c = client(Config { tls, log: Some(log), ..Config::default() }, &self.addr);
        (c, lines)
    }
}

/// The client's one call is refused: a `LinkDown` whose text is returned.
fn refused(c: &Node) -> String {
    let r = c.call("srv", Address::Id(ECHO), &marked(REQ, 64), GUARD);
    match r {
        Err(CallError::LinkDown(why)) => why,
        other => panic!("want LinkDown, got {other:?}"),
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn a_client_certificate_from_another_ca_is_refused_by_the_server() {
    let _g = alone();
    let f = Fixture::new("other-ca", "srv", CONNECT_TIMEOUT);
    let other = Ca::new(&f.dir.join("other"), "other");
    // It trusts the server's CA, but its own certificate comes from another.
    let (bad, _) = f.client(f.ca.trusting(TlsMode::Require, other.node("cli", "cli")));
    let why = refused(&bad);
    assert!(!why.is_empty());
    wait_until(|| f.srv.health().tls_failures == 1);
    assert_eq!(f.srv.health().tls_links, 1, "only the good client's link");
    drop(bad);
    f.unaffected();
    let closes = f.closes();
    assert_eq!(closes.len(), 1, "logged once: {closes:?}");
    assert!(closes[0].contains("tls"), "{closes:?}");
}

#[test]
fn a_server_certificate_naming_another_node_is_refused_by_the_client() {
    let _g = alone();
    // The server's certificate names "other" (the good client knows it by that name); this
    // client's map calls it "srv".
    let f = Fixture::new("naming", "other", CONNECT_TIMEOUT);
    let (bad, lines) = f.client(f.ca.config(TlsMode::Require, "cli"));
    let why = refused(&bad);
    assert!(why.contains("certificate") && why.contains("srv"), "{why}");
    let h = bad.health();
    assert_eq!((h.tls_failures, h.tls_links), (1, 0));
    // The client logs why (after its calls have failed).
    wait_until(|| lines.lock().iter().any(|l| l.contains("certificate")));
    // The server saw the handshake abandoned.
    wait_until(|| f.srv.health().tls_failures == 1);
    drop(bad);
    f.unaffected();
}

#[test]
fn an_expired_client_certificate_is_refused_by_the_server() {
    let _g = alone();
    let f = Fixture::new("expired-cli", "srv", CONNECT_TIMEOUT);
    let (bad, _) = f.client(f.ca.trusting(TlsMode::Require, f.ca.expired("cli-expired", "cli")));
    refused(&bad);
    wait_until(|| f.srv.health().tls_failures == 1);
    assert_eq!(f.srv.health().tls_links, 1, "only the good client's link");
    drop(bad);
    f.unaffected();
    let closes = f.closes();
    assert_eq!(closes.len(), 1, "logged once: {closes:?}");
    assert!(closes[0].to_lowercase().contains("expired"), "{closes:?}");
}

#[test]
fn an_expired_server_certificate_is_refused_by_the_client() {
    let _g = alone();
    // The fixture's server is known as "main"; a second one, "srv", has an expired certificate.
    let f = Fixture::new("expired-srv", "main", CONNECT_TIMEOUT);
    let (expired, expired_addr, _) = server(cfg_with(f.ca.trusting(TlsMode::Require, f.ca.expired("srv", "srv"))));
    let cli = Node::new(cfg_tls(&f.ca, TlsMode::Require, "cli")).unwrap();
    cli.reload(&[("srv", Some(expired_addr.as_str())), ("main", Some(f.addr.as_str()))]);
    let why = refused(&cli);
    assert!(why.contains("certificate") && why.to_lowercase().contains("expired"), "{why}");
    assert_eq!(cli.health().tls_failures, 1);
    wait_until(|| expired.health().tls_failures == 1);
    // The same client's link to a good server works.
    assert_eq!(cli.call("main", Address::Id(ECHO), b"ok", GUARD), Ok(b"ok".to_vec()));
    drop(cli);
    drop(expired);
    f.unaffected();
}

/// Sends the hello on a raw connection and checks the native listener's answer.
fn say_hello(s: &mut TcpStream) {
    s.write_all(&hello_frame()).unwrap();
    let f = read_frame(s).expect("the answer to the hello");
    assert_eq!(
        wire::decode_response(&f).unwrap(),
        wire::Response::Ok { session: HELLO_SESSION, payload: HELLO_ANSWER }
    );
}

/// `n` pseudo-random bytes (xorshift, fixed seed).
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_instead_of_a_client_hello_closes_the_link_logged_once() {
    let _g = alone();
    let f = Fixture::new("garbage", "srv", CONNECT_TIMEOUT);
    let mut s = connect_raw(&f.addr);
    let me = s.local_addr().unwrap().to_string();
    say_hello(&mut s);
    s.write_all(&noise(300)).unwrap();
    wait_closed(&mut s);
    drop(s);
    wait_until(|| f.srv.health().tls_failures == 1);
    f.unaffected();
    let closes = f.closes();
    assert_eq!(closes.len(), 1, "logged once: {closes:?}");
    assert!(closes[0].contains(&me) && closes[0].contains("tls"), "{closes:?}");
    assert!(!closes[0].contains("not completed within"), "refused for what it sent, not at the deadline");
}

#[test]
fn a_hello_followed_by_a_disconnect_is_counted_and_leaves_nothing_behind() {
    let _g = alone();
    let f = Fixture::new("disconnect", "srv", CONNECT_TIMEOUT);
    // Gone before the answer...
    let mut s = connect_raw(&f.addr);
    s.write_all(&hello_frame()).unwrap();
    drop(s);
    wait_until(|| f.srv.health().tls_failures == 1);
    // ...and gone after it.
    let mut s = connect_raw(&f.addr);
    say_hello(&mut s);
    drop(s);
    wait_until(|| f.srv.health().tls_failures == 2);
    f.unaffected();
    // At most one line per second for the closing of accepted links: the second one is
    // counted in the next line.
    let closes = f.closes();
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert!(closes[0].contains("during the TLS handshake"), "{closes:?}");
}

#[test]
fn a_hello_followed_by_silence_is_closed_after_connect_timeout() {
    let _g = alone();
    let f = Fixture::new("silence", "srv", Duration::from_millis(300));
    let mut s = connect_raw(&f.addr);
    say_hello(&mut s);
    wait_closed(&mut s);
    drop(s);
    wait_until(|| f.srv.health().tls_failures == 1);
    f.unaffected();
    let closes = f.closes();
    assert_eq!(closes.len(), 1, "logged once: {closes:?}");
    assert!(closes[0].contains("not completed within 300ms"), "{closes:?}");
}

// ---------------------------------------------------------------------------------------
// Rolling upgrade, and certificates reloaded without a restart
// ---------------------------------------------------------------------------------------

const NAMES: [&str; 3] = ["a", "b", "c"];

/// Gives every node the current address of every node, then calls each ordered pair.
fn remap_and_call(nodes: &[(Node, String)], step: &str) {
    let map: Vec<(&str, Option<&str>)> = NAMES.iter().zip(nodes).map(|(n, (_, a))| (*n, Some(a.as_str()))).collect();
    for (n, _) in nodes {
        n.reload(&map);
    }
    for (i, (x, _)) in nodes.iter().enumerate() {
        for (j, to) in NAMES.iter().enumerate().filter(|&(j, _)| j != i) {
            let p = format!("{} -> {to}", NAMES[i]);
            let r = x.call(to, Address::Name(b"@echo"), p.as_bytes(), GUARD);
            assert_eq!(r, Ok(p.clone().into_bytes()), "{p} ({step}), call {i}->{j}");
        }
    }
}

#[test]
fn rolling_upgrade_off_prefer_require_keeps_every_pair_calling() {
    let _g = shared();
    let dir = tempdir("rolling");
    let ca = Ca::new(&dir, "ca");
    let start = |mode: TlsMode, name: &str| {
        let (n, addr, _) = server(cfg_tls(&ca, mode, name));
        (n, addr)
    };
    let mut nodes: Vec<(Node, String)> = NAMES.iter().map(|n| start(TlsMode::Off, n)).collect();
    remap_and_call(&nodes, "all off");
    let mut modes = [TlsMode::Off; 3];
    // TLS links each node has counted so far.
    let mut want = [0u64; 3];
    for mode in [TlsMode::Prefer, TlsMode::Require] {
        for i in 0..3 {
            // A restart: a new node of the same name on a new port.
            nodes[i] = start(mode, NAMES[i]);
            modes[i] = mode;
            let step = format!("{} restarted in {}, modes {modes:?}", NAMES[i], mode.as_str());
            remap_and_call(&nodes, &step);
            // The new node made a link to each other node and accepted one from each: TLS
            // where both ends have it on. The links between the others stay as they were.
            let on = |k: usize| modes[k] != TlsMode::Off;
            want[i] = 0;
            for j in (0..3).filter(|&j| j != i && on(i) && on(j)) {
                want[i] += 2;
                want[j] += 2;
            }
            let got: Vec<u64> = nodes.iter().map(|(n, _)| n.health().tls_links).collect();
            assert_eq!(got, want, "TLS links after {step}");
            for (k, (n, _)) in nodes.iter().enumerate() {
                let h = n.health();
                assert_eq!((h.refused_plain, h.tls_failures), (0, 0), "node {} after {step}", NAMES[k]);
            }
        }
    }
    // All in require: each node holds its four links (two each way), every one TLS (a plain
    // one would have been refused).
    for (n, _) in &nodes {
        wait_until(|| n.health().links == 4);
        assert_eq!(n.tls_mode(), TlsMode::Require);
    }
    // Each node counts two per other node at its own restart in require, and two per later
    // restart of another: a 4 + 2 + 2, b 4 + 2, c 4.
    assert_eq!(want, [8, 6, 4]);
}

/// Copies `ca` and a fresh certificate of `node` made by it into `live` (`ca.pem`,
/// `<node>.pem`, `<node>.key`): a node's files replaced on disk. Returns the config that
/// names them.
fn install(ca: &Ca, live: &Path, node: &str) -> TlsConfig {
    std::fs::create_dir_all(live).unwrap();
    let (cert, key) = ca.node(&format!("{node}-installed"), node);
    let tls = TlsConfig {
        mode: TlsMode::Require,
        ca: live.join("ca.pem"),
        cert: live.join(format!("{node}.pem")),
        key: live.join(format!("{node}.key")),
    };
    std::fs::copy(ca.pem(), &tls.ca).unwrap();
    std::fs::copy(cert, &tls.cert).unwrap();
    std::fs::copy(key, &tls.key).unwrap();
    tls
}

#[test]
fn reload_tls_puts_a_new_ca_in_force_for_new_links_only() {
    let _g = shared();
    let dir = tempdir("reload");
    let (old, new) = (Ca::new(&dir.join("old"), "old"), Ca::new(&dir.join("new"), "new"));
    let live = dir.join("live");
    let (srv, addr, _) = server(cfg_with(install(&old, &live, "srv")));
    let before = client(cfg_tls(&old, TlsMode::Require, "cli"), &addr);
    assert_eq!(before.call("srv", Address::Id(ECHO), b"old", GUARD), Ok(b"old".to_vec()));
    install(&new, &live, "srv");
    srv.reload_tls().expect("reload");
    // A new link from a client that trusts only the old CA is refused...
    let stale = client(cfg_tls(&old, TlsMode::Require, "cli"), &addr);
    let why = refused(&stale);
    assert!(why.contains("certificate"), "{why}");
    assert_eq!(stale.health().tls_failures, 1);
    // ...one from the new CA is served...
    let fresh = client(cfg_tls(&new, TlsMode::Require, "cli"), &addr);
    assert_eq!(fresh.call("srv", Address::Id(ECHO), b"new", GUARD), Ok(b"new".to_vec()));
    // ...and the link made before the reload keeps the certificates it was made with.
    assert_eq!(before.call("srv", Address::Id(ECHO), b"still", GUARD), Ok(b"still".to_vec()));
    assert_eq!(before.health().tls_links, 1);
}

#[test]
fn reload_tls_from_a_broken_file_fails_naming_it_and_keeps_the_certificates_in_use() {
    let _g = shared();
    let dir = tempdir("reload-broken");
    let old = Ca::new(&dir.join("old"), "old");
    let live = dir.join("live");
    let tls = install(&old, &live, "srv");
    let (srv, addr, _) = server(cfg_with(tls.clone()));
    // A certificate file that is not PEM any more.
    std::fs::write(&tls.cert, "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n").unwrap();
    let err = srv.reload_tls().expect_err("a broken certificate file");
    assert!(err.contains(&tls.cert.display().to_string()), "{err}");
    // A key file gone.
    install(&old, &live, "srv");
    std::fs::remove_file(&tls.key).unwrap();
    let err = srv.reload_tls().expect_err("a missing key file");
    assert!(err.contains(&tls.key.display().to_string()), "{err}");
    // The certificates in use stay: a new link from the old CA is served.
    let c = client(cfg_tls(&old, TlsMode::Require, "cli"), &addr);
    assert_eq!(c.call("srv", Address::Id(ECHO), b"old", GUARD), Ok(b"old".to_vec()));
    assert_eq!(srv.health().tls_links, 1);
}

#[test]
fn require_both_sides_calls_tiny_and_large() {
    let _g = shared();
    let dir = tempdir("basic");
    let ca = Ca::new(&dir, "ca");
    let (srv, addr, _) = server(cfg_tls(&ca, TlsMode::Require, "srv"));
    let cli = client(cfg_tls(&ca, TlsMode::Require, "cli"), &addr);
    let h = handle(&cli);
    for n in [0usize, 1, 100, 40_000, 1 << 20, 3 << 20] {
        let p = pattern(n, 7);
        let r = h.call("srv", Address::Id(ECHO), &p, GUARD).unwrap();
        assert_eq!(r.len(), n);
        assert!(r == p, "echo of {n} bytes differs");
    }
    assert_eq!(srv.health().tls_links, 1);
    assert_eq!(cli.health().tls_links, 1);
    assert_eq!(cli.health().tls_failures + srv.health().tls_failures, 0);
}
