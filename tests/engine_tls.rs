//! TLS between native nodes (issue 14, part 3): the hello, mutual authentication with a
//! cluster CA, the node name in the certificate, plain text with stock peers in `prefer`,
//! refusals in `require`, over real sockets on loopback.
#![cfg(feature = "tls")]

mod engine_util;
mod tls_util;
use engine_util::*;
use skynet_cluster::engine::{Address, CallError, Config, TlsMode};
use tls_util::*;

fn cfg_tls(ca: &Ca, mode: TlsMode, node: &str) -> Config {
    Config { tls: ca.config(mode, node), ..Config::default() }
}

#[test]
fn require_both_sides_calls_tiny_and_large() {
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
    let _ = CallError::Timeout;
}
