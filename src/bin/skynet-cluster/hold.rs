//! `bench --hold-links N`: many idle links held open on the server while the bench runs, to
//! see what each costs it (RSS per link) and whether busy links still get answered in time.
//!
//! The links are plain sockets (not engine links), so the client's own cost stays small and
//! the server's is what is measured: each sends one call to `@echo` and reads its answer,
//! so that the server holds a link that has been used (a stock node: its agent).

use super::procstat::pid_rss_kib;
use super::sys::raise_nofile;
use skynet_cluster::wire;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The held sockets: kept only to stay open; dropping closes them.
pub struct Held(#[allow(dead_code)] Vec<TcpStream>);

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    let mut b = vec![0u8; u16::from_be_bytes(h) as usize];
    s.read_exact(&mut b)?;
    Ok(b)
}

/// Opens `n` links to `target`, one `@echo` call of `payload` on each, and reports the
/// server's RSS growth per link (kernel socket buffers are not in RSS).
pub fn hold_links(target: &str, n: usize, payload: &[u8], server_pid: Option<u32>) -> Result<Held, String> {
    let lim = raise_nofile();
    if (lim.soft as usize) < n + 256 {
        return Err(format!("--hold-links {n}: this process may open only {} files ({lim})", lim.soft));
    }
    let rss0 = server_pid.and_then(pid_rss_kib);
    let t0 = Instant::now();
    let mut frame = Vec::new();
    wire::encode_request(&mut frame, wire::Address::Name(b"@echo"), 1, payload, wire::RequestKind::Call)
        .map_err(|e| e.to_string())?;
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(target).map_err(|e| format!("link {i} of {n}: connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.write_all(&frame).map_err(|e| format!("link {i} of {n}: {e}"))?;
        socks.push(s);
    }
    for (i, s) in socks.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        let f = read_frame(s).map_err(|e| format!("link {i} of {n} got no answer (a limit of the server?): {e}"))?;
        match wire::decode_response(&f) {
            Ok(wire::Response::Ok { .. }) => {}
            other => return Err(format!("link {i} of {n}: unexpected answer {other:?}")),
        }
    }
    let took = t0.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let rss1 = server_pid.and_then(pid_rss_kib);
    println!(
        "holding {n} idle links (opened and used in {:.2} s): server RSS {}",
        took.as_secs_f64(),
        match (rss0, rss1) {
            (Some(a), Some(b)) => format!(
                "{:.1} -> {:.1} MiB, {:.1} KiB per idle link",
                a as f64 / 1024.0,
                b as f64 / 1024.0,
                b.saturating_sub(a) as f64 / n as f64
            ),
            _ => "unknown (no --server-pid)".into(),
        }
    );
    Ok(Held(socks))
}
