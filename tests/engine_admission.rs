//! Who may connect and what they may call (issue 14, parts 1 and 2): the listener's CIDR
//! allowlist and bound per source address (loopback sources 127.0.0.x differ, so both can be
//! tested here), and the exposure policy (registered names only, or a list of them).

mod engine_util;
use engine_util::*;
use parking_lot::Mutex;
use skynet_cluster::engine::{Address, CallError, Config, Exposure, IpNet, LogHook, LogRecord};
use skynet_cluster::wire;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::time::Duration;

/// A connection to `to` from the source address `from` (bound before connecting).
fn connect_from(from: Ipv4Addr, to: &str) -> TcpStream {
    let to: SocketAddr = to.parse().unwrap();
    let SocketAddr::V4(to) = to else { panic!("IPv4 only") };
    // SAFETY: plain socket calls on a descriptor we own (handed to TcpStream at the end, or
    // closed on failure); the sockaddr structs are valid for the sizes passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let sa = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(ip.octets()) },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = sa(from, 0);
        assert_eq!(libc::bind(fd, &local as *const _ as *const libc::sockaddr, len), 0, "bind {from}");
        let remote = sa(*to.ip(), to.port());
        assert_eq!(libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len), 0, "connect");
        let s = TcpStream::from_raw_fd(fd);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
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
        wire::Response::Ok { payload, .. } => Some(Ok(payload.to_vec())),
        wire::Response::Error { msg, .. } => Some(Err(msg.to_vec())),
        other => panic!("unexpected {other:?}"),
    }
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 16];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn lines() -> (Arc<Mutex<Vec<String>>>, LogHook) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, LogHook::new(move |r: &LogRecord<'_>| s.lock().push(r.text.to_string())))
}

#[test]
fn the_allowlist_admits_its_blocks_and_closes_the_rest_before_reading() {
    let (seen, log) = lines();
    let cfg = Config {
        allow: Some(vec![
            "127.0.0.2/32".parse::<IpNet>().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]),
        log: Some(log),
        ..Config::default()
    };
    let (srv, addr, _) = server(cfg);
    let mut ok = connect_from(Ipv4Addr::new(127, 0, 0, 2), &addr);
    assert_eq!(raw_call(&mut ok, wire::Address::Name(b"@echo"), 1, b"hi"), Some(Ok(b"hi".to_vec())));
    for _ in 0..5 {
        let mut no = connect_from(Ipv4Addr::new(127, 0, 0, 3), &addr);
        assert_eq!(raw_call(&mut no, wire::Address::Name(b"@echo"), 1, b"x"), None, "refused before a byte is read");
    }
    // An engine client from 127.0.0.1 is refused too; the admitted link keeps working.
    let c = client(Config::default(), &addr);
    assert!(c.call("srv", Address::Name(b"@echo"), b"x", Some(Duration::from_secs(5))).is_err());
    assert_eq!(raw_call(&mut ok, wire::Address::Name(b"@echo"), 2, b"again"), Some(Ok(b"again".to_vec())));
    wait_until(|| srv.health().refused_not_allowed >= 6);
    let h = srv.health();
    assert_eq!((h.links, h.refused_per_source, h.refused_links), (1, 0, 0));
    // Logged once per source per interval, not once per connection.
    let refusals: Vec<String> = seen.lock().iter().filter(|l| l.contains("not in the allowlist")).cloned().collect();
    assert_eq!(refusals.iter().filter(|l| l.contains("127.0.0.3:")).count(), 1, "{refusals:?}");
}

#[test]
fn a_bound_per_source_address_leaves_other_sources_alone() {
    let (srv, addr, _) = server(Config { max_links_per_source: Some(2), ..Config::default() });
    let from = Ipv4Addr::new(127, 0, 0, 4);
    let mut a = connect_from(from, &addr);
    let mut b = connect_from(from, &addr);
    assert!(raw_call(&mut a, wire::Address::Id(ECHO), 1, b"a").is_some());
    assert!(raw_call(&mut b, wire::Address::Id(ECHO), 1, b"b").is_some());
    let mut third = connect_from(from, &addr);
    assert!(closed(&mut third), "a third link from the same source is closed");
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 5), &addr);
    assert!(raw_call(&mut other, wire::Address::Id(ECHO), 1, b"o").is_some(), "another source is served");
    assert_eq!(srv.health().refused_per_source, 1);
    // A place freed is taken again.
    drop(a);
    wait_until(|| srv.health().links == 2);
    let mut again = connect_from(from, &addr);
    assert!(raw_call(&mut again, wire::Address::Id(ECHO), 1, b"x").is_some());
}

#[test]
fn exposure_registered_refuses_handles_and_local_names_as_stock_refuses_unknown_names() {
    let (srv, addr, seen) = server(Config { exposure: Exposure::Registered, ..Config::default() });
    let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 1), &addr);
    let invalid = Some(Err(b"Invalid name".to_vec()));
    assert_eq!(raw_call(&mut s, wire::Address::Name(b"@echo"), 1, b"ok"), Some(Ok(b"ok".to_vec())));
    assert_eq!(raw_call(&mut s, wire::Address::Id(ECHO), 2, b"x"), invalid, "a numeric handle");
    assert_eq!(raw_call(&mut s, wire::Address::Name(b".launcher"), 3, b"x"), invalid, "a local name");
    assert_eq!(raw_call(&mut s, wire::Address::Name(b":00000001"), 4, b"x"), invalid, "a :hex address");
    assert!(seen.names.lock().is_empty(), "nothing refused reached the service");
    // Name queries for registered names are answered.
    let c = client(Config::default(), &addr);
    assert_eq!(c.query("srv", "echo", GUARD), Ok(ECHO));
    assert_eq!(srv.health().refused_exposure, 3);
}

#[test]
fn exposure_of_a_list_hides_the_other_registered_names_from_calls_and_queries() {
    let (srv, addr, _) = server(Config { exposure: Exposure::Names(vec!["sink".into()]), ..Config::default() });
    let c = client(Config::default(), &addr);
    assert!(c.call("srv", Address::Name(b"@sink"), b"", GUARD).is_ok());
    assert_eq!(c.call("srv", Address::Name(b"@echo"), b"x", GUARD), Err(CallError::Remote(b"Invalid name".to_vec())));
    assert_eq!(c.query("srv", "echo", GUARD), Err(CallError::Remote(b"name not found".to_vec())));
    assert_eq!(c.query("srv", "sink", GUARD), Ok(SINK));
    assert_eq!(srv.health().refused_exposure, 2);
}
