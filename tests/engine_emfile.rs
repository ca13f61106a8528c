//! Accept survives running out of file descriptors (issue 12): it pauses without spinning,
//! logs once per episode, and resumes by itself when descriptors free up, serving the
//! client that waited in the backlog meanwhile. Its own test binary: it lowers the
//! process's RLIMIT_NOFILE.

mod engine_util;
use engine_util::*;
use skynet_cluster::engine::Config;
use skynet_cluster::wire;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[test]
fn accept_pauses_on_emfile_without_spinning_and_resumes_when_descriptors_free_up() {
    let (srv, addr, _) = server(Config::default());
    // A low soft limit, so that filling it is quick.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on valid structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let low = libc::rlimit { rlim_cur: 256.min(lim.rlim_max), rlim_max: lim.rlim_max };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &low), 0);
    }
    // Take every descriptor left.
    let mut hog = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("unexpected error filling the table: {e}"),
        }
    }
    // One back for the client's socket; the server's accept then has none.
    hog.pop();
    let mut s = TcpStream::connect(&addr).expect("the kernel queues the connection in the backlog");
    let mut out = Vec::new();
    wire::encode_request(&mut out, wire::Address::Id(ECHO), 1, b"waited", wire::RequestKind::Call).unwrap();
    s.write_all(&out).unwrap();
    wait_until(|| srv.health().accept_stalls == 1);
    // Stalled: no answer, and the I/O thread does not spin while it waits.
    let cpu0 = cpu_time();
    let wall0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(600))).unwrap();
    let mut b = [0u8; 1];
    let e = s.read(&mut b).expect_err("no answer while the server has no descriptor");
    assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e}");
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    assert!(cpu < wall / 4, "the stalled listener must not spin: {cpu:?} of CPU in {wall:?}");
    // Descriptors come back: the waiting client is served with no new connection.
    drop(hog);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let f = read_frame(&mut s).expect("answered once descriptors are free");
    assert_eq!(wire::decode_response(&f).unwrap(), wire::Response::Ok { session: 1, payload: b"waited" });
    assert_eq!(srv.health().accept_stalls, 1, "one episode, counted once");
    // SAFETY: restores the limit read above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    // New clients are accepted as usual.
    let c = client(Config::default(), &addr);
    assert_eq!(c.call("srv", skynet_cluster::engine::Address::Id(ECHO), b"x", GUARD).unwrap(), b"x");
}
