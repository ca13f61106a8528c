//! The shell tool's side of issue 12 ("Nothing a peer does takes a node down"), run as a
//! process over loopback: `watch` sees a node go down and come back, `serve --max-clients`
//! closes the connection beyond its bound while the others keep being answered, `serve`
//! raises its descriptor limit, `call --heartbeat` gives up on a frozen peer, and bad flag
//! values are one-line usage errors.

use skynet_cluster::seri::{self, Value};
use skynet_cluster::wire::{self, Address, RequestKind, Response};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_skynet-cluster");
/// Bound on anything the tests wait for: generous, so that a loaded machine does not fail
/// them; a pass usually takes a fraction of it.
const WAIT: Duration = Duration::from_secs(30);

fn cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// A running `skynet-cluster` with its stdout read line by line and its stderr kept;
/// killed when dropped.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        Self::spawn_cmd(Command::new(BIN).args(args))
    }

    fn spawn_cmd(cmd: &mut Command) -> Proc {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut err, e2) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                e2.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc { child, lines, seen: Vec::new(), stderr }
    }

    /// The next stdout line that satisfies `pred` (lines before it are skipped).
    fn line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(e) => {
                    let why = if e == RecvTimeoutError::Timeout { "timed out" } else { "stdout closed" };
                    panic!(
                        "waiting for {what}: {why}\nstdout so far:\n{}\nstderr:\n{}",
                        self.seen.join("\n"),
                        self.stderr.lock().unwrap()
                    );
                }
            }
        }
    }

    /// Waits for the process to exit by itself.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "still running; stderr:\n{}", self.stderr.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `skynet-cluster serve --listen ADDR ARGS...`, its bound address and the first line.
struct Serve {
    proc: Proc,
    addr: String,
    first: String,
}

fn serve_on(listen: &str, args: &[&str]) -> Result<Serve, String> {
    serve_cmd(Command::new(BIN).args(["serve", "--listen", listen]).args(args))
}

fn serve_cmd(cmd: &mut Command) -> Result<Serve, String> {
    let mut proc = Proc::spawn_cmd(cmd);
    let deadline = Instant::now() + WAIT;
    let first = loop {
        match proc.lines.recv_timeout(Duration::from_millis(50)) {
            Ok(l) if l.contains("listening on") => break l,
            Ok(_) => {}
            Err(_) => {
                if let Some(st) = proc.child.try_wait().unwrap() {
                    std::thread::sleep(Duration::from_millis(50)); // the stderr reader
                    return Err(format!("serve exited ({st}): {}", proc.stderr.lock().unwrap()));
                }
                assert!(Instant::now() < deadline, "serve did not start");
            }
        }
    };
    let addr = first.split("listening on ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    Ok(Serve { proc, addr, first })
}

fn serve(args: &[&str]) -> Serve {
    serve_on("127.0.0.1:0", args).unwrap()
}

/// A `watch` line: `YYYY-MM-DD HH:MM:SS.mmm REST`; returns REST after checking the stamp.
fn event(line: &str) -> &str {
    let b = line.as_bytes();
    let stamp_ok = line.len() > 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b' '
        && line[..23].bytes().filter(u8::is_ascii_digit).count() == 17;
    assert!(stamp_ok, "no timestamp in {line:?}");
    &line[24..]
}

#[test]
fn watch_sees_a_node_go_down_and_come_back() {
    let mut s = serve(&[]);
    let addr = s.addr.clone();
    let mut w = Proc::spawn(&["watch", &addr, "--interval", "0.2", "--count", "3"]);
    let up = format!("{addr} up");
    w.line("up", |l| event(l) == up);
    s.proc.kill();
    let down = format!("{addr} down: ");
    let l = w.line("down", |l| event(l).starts_with(&down));
    let reason = &event(&l)[down.len()..];
    assert!(
        reason == "peer closed the connection"
            || reason.starts_with("i/o error: ")
            || reason.starts_with(&format!("connect to {addr} failed: ")),
        "down for an unexpected reason: {l:?}"
    );
    // Same port again (the listener sets SO_REUSEADDR; retried while the port is not free).
    let deadline = Instant::now() + WAIT;
    let _s2 = loop {
        match serve_on(&addr, &[]) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot restart serve on {addr}: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    w.line("up again", |l| event(l) == up);
    // --count 3: exits by itself, successfully, after the third line.
    assert!(w.wait().success());
    assert_eq!(w.seen.len(), 3, "{:?}", w.seen);
}

#[test]
fn watch_reports_an_unreachable_node_once_and_exits_on_sigterm() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut w = Proc::spawn(&["watch", &dead, "--interval", "0.1"]);
    let down = format!("{dead} down: ");
    let l = w.line("down", |l| event(l).starts_with(&down));
    assert!(l.contains("Connection refused"), "{l:?}");
    // Retries while down print nothing more.
    std::thread::sleep(Duration::from_millis(800));
    assert!(w.lines.try_recv().is_err(), "a line after the first down");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(w.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let st = w.wait();
    assert_eq!(st.code(), Some(0), "{st}");
    assert!(w.stderr.lock().unwrap().contains("SIGTERM, exiting"));
}

/// One call to `@echo` on a raw connection: writes the request, reads the answer (one
/// frame: the payloads here are small) and returns its payload.
fn raw_call(s: &mut TcpStream, session: u32, payload: &[u8]) -> Vec<u8> {
    let mut req = Vec::new();
    wire::encode_request(&mut req, Address::Name(b"@echo"), session, payload, RequestKind::Call).unwrap();
    s.write_all(&req).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    match wire::decode_response(&body).unwrap() {
        Response::Ok { session: got, payload } if got == session => payload.to_vec(),
        r => panic!("unexpected answer {r:?}"),
    }
}

/// True when the server closed `s` (EOF or reset) within the wait; false if it is open.
fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => panic!("data on a connection that sent nothing"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("read: {e}"),
    }
}

#[test]
fn serve_max_clients_closes_the_one_beyond() {
    let mut s = serve(&["--max-clients", "2", "--health-every", "0.1"]);
    assert!(s.proc.line("limits", |l| l.contains("limits: ")).contains("clients 2,"));
    let p = seri::encode(&[Value::from("ping"), Value::Integer(7)]).unwrap();
    let mut c1 = TcpStream::connect(&s.addr).unwrap();
    let mut c2 = TcpStream::connect(&s.addr).unwrap();
    // Both accepted (answered) before the third arrives.
    assert_eq!(raw_call(&mut c1, 1, &p), p);
    assert_eq!(raw_call(&mut c2, 1, &p), p);
    let mut c3 = TcpStream::connect(&s.addr).unwrap();
    assert!(closed_by_server(&mut c3, WAIT), "the third connection was not closed");
    // The first two still get answers.
    assert_eq!(raw_call(&mut c1, 2, &p), p);
    assert_eq!(raw_call(&mut c2, 2, &p), p);
    assert!(!closed_by_server(&mut c1, Duration::from_millis(100)));
    // The health line counts the refusal and the two links.
    s.proc.line("health with the refusal", |l| l.contains("health: links 2/16384,") && l.contains("refused links 1,"));
    // A place frees up once one of the two closes (the server notices the close first).
    drop(c1);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c4 = TcpStream::connect(&s.addr).unwrap();
        if !closed_by_server(&mut c4, Duration::from_millis(200)) {
            assert_eq!(raw_call(&mut c4, 1, &p), p);
            break;
        }
        assert!(Instant::now() < deadline, "no place freed after a client left");
    }
}

/// The hard RLIMIT_NOFILE, as serve's raised soft limit should be (an unlimited hard limit
/// means the kernel's fs.nr_open).
fn nofile_hard() -> libc::rlim_t {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `rl` is a valid, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    if rl.rlim_max == libc::RLIM_INFINITY {
        return std::fs::read_to_string("/proc/sys/fs/nr_open").unwrap().trim().parse().unwrap();
    }
    rl.rlim_max
}

fn fd_limit(first: &str) -> libc::rlim_t {
    let n = first.split("fd limit ").nth(1).unwrap_or_else(|| panic!("no fd limit in {first:?}"));
    n.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn serve_raises_its_fd_limit_to_the_hard_limit() {
    let hard = nofile_hard();
    let s = serve(&[]);
    assert_eq!(fd_limit(&s.first), hard, "{}", s.first);
    // Started with a low soft limit, it says it raised it.
    let low: libc::rlim_t = 256;
    if hard > low {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
                rl.rlim_cur = low;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let s = serve_cmd(&mut cmd).unwrap();
        assert!(s.first.contains(&format!("fd limit {hard} (raised from {low})")), "{}", s.first);
    }
}

/// A peer that accepts and reads everything and answers nothing; its address.
fn frozen_peer() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                while matches!(s.read(&mut b), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[test]
fn watch_sees_a_frozen_peer_by_its_heartbeat() {
    let addr = frozen_peer();
    let mut w = Proc::spawn(&["watch", &addr, "--interval", "0.2", "--heartbeat", "0.5"]);
    let l = w.line("down", |l| !l.is_empty());
    assert_eq!(event(&l), format!("{addr} down: heartbeat: no answer to a probe within 500ms"));
    // Reconnects succeed (the kernel accepts) but nothing answers: no `up`, no second down.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(w.lines.try_recv().is_err(), "a line after the first down");
}

#[test]
fn call_with_heartbeat_gives_up_on_a_frozen_peer() {
    let addr = frozen_peer();
    let t0 = Instant::now();
    let o = cli(&["call", "--heartbeat", "1", "--timeout", "120000", &addr, "@echo", "1"]);
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(err.contains("skynet-cluster: link down: heartbeat: no answer to a probe within 1s"), "{err}");
    // Well before the call's own timeout (about 2 s expected).
    assert!(took < WAIT, "took {took:?}");
    assert!(o.stdout.is_empty());
}

#[test]
fn bad_flag_values_are_one_line_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["serve", "--listen", "127.0.0.1:0", "--max-links", "abc"], "--max-links: `abc` is not a whole number"),
        (&["serve", "--listen", "127.0.0.1:0", "--max-clients", "0"], "--max-clients: must be at least 1"),
        (&["serve", "--listen", "127.0.0.1:0", "--max-send", "12Q"], "--max-send: `12Q` is not a byte size"),
        (&["serve", "--listen", "127.0.0.1:0", "--max-reassembly", "1.5M"], "--max-reassembly: `1.5M`"),
        (&["serve", "--listen", "127.0.0.1:0", "--max-send-queue", "0"], "--max-send-queue: must be at least 1"),
        (&["serve", "--listen", "127.0.0.1:0", "--multi-timeout", "-1"], "--multi-timeout: `-1`"),
        (&["serve", "--listen", "127.0.0.1:0", "--idle-timeout", "soon"], "--idle-timeout: `soon`"),
        (&["serve", "--listen", "127.0.0.1:0", "--heartbeat", "x"], "--heartbeat: `x`"),
        (&["serve", "--listen", "127.0.0.1:0", "--health-every"], "--health-every needs a value"),
        (&["serve", "--listen", "127.0.0.1:0", "--max-linkz", "3"], "unknown flag --max-linkz"),
        (&["call", "--heartbeat", "x", "127.0.0.1:1", "@echo"], "--heartbeat: `x`"),
        (&["push", "--heartbeat=-3", "127.0.0.1:1", "@echo"], "--heartbeat: `-3`"),
        (&["query", "--heartbeat", "nan", "127.0.0.1:1", "x"], "--heartbeat: `nan`"),
        (&["bench", "--heartbeat", "x"], "--heartbeat: `x`"),
        (&["watch", "127.0.0.1:1", "--interval", "0"], "--interval: must be more than 0 seconds"),
        (&["watch", "127.0.0.1:1", "--count", "abc"], "--count: `abc` is not a whole number"),
        (&["watch", "nohostport"], "`nohostport` is not HOST:PORT"),
        (&["watch"], "missing HOST:PORT"),
    ];
    for (args, want) in cases {
        let o = cli(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
        let cmd = args[0];
        assert!(err.starts_with(&format!("skynet-cluster {cmd}: {want}")), "{args:?}: {err}");
        assert!(err.trim_end().ends_with(&format!("(see `skynet-cluster {cmd} --help`)")), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // The help says how byte sizes are written.
    let o = cli(&["serve", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("K, M or G suffix, powers of 1024"), "{help}");
    for f in ["--max-links", "--max-clients", "--max-reassembly", "--max-send ", "--max-send-queue", "--multi-timeout"]
    {
        assert!(help.contains(f), "{f} not in serve --help");
    }
    for f in ["--idle-timeout", "--heartbeat", "--health-every"] {
        assert!(help.contains(f), "{f} not in serve --help");
    }
}

#[test]
fn serve_takes_the_limits_and_says_them() {
    let mut s = serve(&[
        "--max-links",
        "100",
        "--max-reassembly",
        "1M",
        "--max-send",
        "2G",
        "--max-send-queue",
        "64K",
        "--multi-timeout",
        "0",
        "--idle-timeout",
        "2.5",
        "--heartbeat",
        "3",
    ]);
    let l = s.proc.line("limits", |l| l.contains("limits: "));
    assert_eq!(
        l,
        "skynet-cluster serve: limits: links 100, clients -, reassembly 1 MiB, send 2 GiB (64 KiB per link), \
         multi-part timeout off, idle timeout 2.5 s, heartbeat 3 s"
    );
    // And serves: one call through the CLI.
    let o = cli(&["call", "--heartbeat", "1", &s.addr, "@echo", "42"]);
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned()), (Some(0), "42\n".into()));
    // SIGUSR1 prints the health line.
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(s.proc.child.id() as libc::pid_t, libc::SIGUSR1) }, 0);
    let h = s.proc.line("health", |l| l.contains(" health: "));
    assert!(h.contains("health: links ") && h.contains("/100, reassembly 0 B/1 MiB, send "), "{h}");
}
