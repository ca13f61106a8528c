//! `skynet-cluster bench`: load generator against any node serving `@echo` / `@sink`
//! (ours or stock skynet), with the raw TCP floor measured in the same run.

use super::args::{parse_size, usage_error, Args};
use super::floor;
use super::procstat::{pid_cpu, pid_peak_rss_kib, pid_rss_kib, self_cpu, self_peak_rss_kib};
use super::tlsflags::{self, Tls};
use bytes::Bytes;
use hdrhistogram::Histogram;
use parking_lot::{Condvar, Mutex};
use skynet_cluster::engine::{Address, CallError, CallOpts, Config, Handle, Heartbeat, Node};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HELP: &str = "\
skynet-cluster bench: load generator for a node that serves @echo and @sink.

USAGE:
    skynet-cluster bench [--connect HOST:PORT] [--size N] [--conc N] [--duration S] [--push]
                         [--heartbeat SECS] [--hold-links N] [TLS] [--vs-plain [--rounds N]]

Each call is cluster.call(node, \"@echo\", x): x is a skynet.pack'ed integer for the tiny
size, else a packed string of N bytes. Concurrency N keeps N calls in flight on one link.
With neither --size nor --conc, runs the matrix: tiny, 1k, 16k, 64k, 1m x conc 1, 8, 64,
256, then pushes/s. Every figure is printed next to the raw floor measured in the same run
(plain blocking TCP ping-pong of the same frame sizes over loopback, TCP_NODELAY, one write
and one read per frame, in-process threads), as a ratio to it.

FLAGS:
    --connect HOST:PORT  the node to load; without it, bench starts `skynet-cluster serve`
                         as a child on a free loopback port (and reports its CPU and RSS)
    --server-pid PID     the server's pid, to report its CPU and peak RSS (/proc)
    --size N[,N...]      payload size: tiny, or bytes with optional k/m/g suffix (powers of
                         1024: 1k, 64k, 1m);
                         a list runs each
    --conc N[,N...]      calls in flight (default 1 with --size); a list runs each
    --duration S         seconds per measurement (default 2; decimals allowed)
    --push               measure pushes/s to @sink instead of calls (with --size: that size)
    --no-floor           skip the floor measurements
    --heartbeat SECS     probe the client's links when nothing arrived for SECS seconds and
                         drop them after SECS more without an answer (default 0 = off)
    --hold-links N       first open N links to the node, use each once, and keep them idle
                         while the bench runs: prints the server's RSS per idle link (with
                         its pid) and the rows then show busy links beside N idle ones (plain
                         links, whatever --tls says)
    --vs-plain           with --tls prefer|require: TLS against plain on the same node (run
                         `serve --tls prefer`: one port serves both). Each row runs plain then
                         TLS, on two links of their own; prints calls/s and p50 of both, the
                         ratios, and the goals: TLS >= 80% of plain calls/s for tiny at conc
                         64, >= 70% for 1 MiB (every conc), p50 <= 1.2x plain for tiny at conc
                         1, each met or not met. Rows: --size x --conc, or by default tiny x
                         1, 64 and 1m x 1, 8. No floor, no pushes
    --rounds N           with --vs-plain: run the rows N times, alternating, and report each
                         figure's median (default 1)
    --help               this text

{TLS}
With --tls, every link the bench makes is TLS (the matrix's idle-link memory row is left out:
its 256 links would need 256 node names, and the certificate names one). Without --connect,
the server bench starts gets `--tls prefer` and the same CA, certificate and key.

Columns: calls/s, MB/s (payload, each way), latency p50/p99/p99.9 in microseconds,
CPU seconds per 100k calls of the client process and of the server (when its pid is known).
`xF` columns are ours divided by the floor (for calls/s higher is better; for latency and
CPU lower is better).
";

pub fn main(argv: Vec<String>) -> i32 {
    let mut flags = vec!["connect", "server-pid", "size", "conc", "duration", "heartbeat", "hold-links", "rounds"];
    flags.extend_from_slice(tlsflags::CLIENT_FLAGS);
    let a = match Args::parse(argv, &flags, &["push", "no-floor", "vs-plain"]) {
        Ok(a) => a,
        Err(e) => return usage_error("bench", &e),
    };
    if a.flag("help") {
        print!("{}", HELP.replace("{TLS}", tlsflags::CLIENT_HELP));
        return 0;
    }
    let o = match opts(&a) {
        Ok(o) => o,
        Err(e) => return usage_error("bench", &e),
    };
    match run(&a, o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("skynet-cluster bench: {e}");
            1
        }
    }
}

pub(crate) struct Child(pub(crate) std::process::Child, String);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

/// `skynet-cluster serve` on a free loopback port (with TLS on: `--tls prefer` and `tls`'s
/// files), and its address.
pub(crate) fn spawn_server(tls: &Tls) -> Result<(Child, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let pf = std::env::temp_dir().join(format!("skc-bench-{}.port", std::process::id()));
    let pfs = pf.to_string_lossy().to_string();
    let _ = std::fs::remove_file(&pf);
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--port-file", &pfs]);
    if tls.on() {
        cmd.args(["--tls", "prefer", "--tls-ca"]).arg(&tls.cfg.ca);
        cmd.arg("--tls-cert").arg(&tls.cfg.cert).arg("--tls-key").arg(&tls.cfg.key);
    }
    let child = cmd.stdout(std::process::Stdio::null()).spawn().map_err(|e| format!("cannot start the server: {e}"))?;
    let child = Child(child, pfs.clone());
    let t0 = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(&pf) {
            return Ok((child, s.trim().to_string()));
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err("the server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub(crate) fn payload(size: Option<usize>) -> Vec<u8> {
    let mut p = Vec::new();
    match size {
        None => skynet_cluster::seri::encode_integer_into(&mut p, 1),
        Some(n) => {
            let s: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            skynet_cluster::seri::encode_str_into(&mut p, &s).expect("size below 4 GiB");
        }
    }
    p
}

pub(crate) fn label(size: Option<usize>) -> String {
    match size {
        None => "tiny".into(),
        Some(n) if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}m", n >> 20),
        Some(n) if n >= 1024 && n % 1024 == 0 => format!("{}k", n >> 10),
        Some(n) => n.to_string(),
    }
}

struct State {
    /// The node map's name of the node loaded.
    node: String,
    stop: AtomicBool,
    active: AtomicUsize,
    calls: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<CallError>>,
    hist: Mutex<Histogram<u64>>,
    idle: (Mutex<()>, Condvar),
}

fn issue(h: Handle, st: Arc<State>, p: Bytes) {
    let start = Instant::now();
    let (h2, st2, p2) = (h.clone(), st.clone(), p.clone());
    let opts = CallOpts { timeout: Some(Duration::from_secs(60)), trace: None };
    let r = h.call_with_bytes(&st.node, Address::Name(b"@echo"), p, opts, move |r| {
        match r {
            Ok(_) => {
                st2.calls.fetch_add(1, Ordering::Relaxed);
                let _ = st2.hist.lock().record(start.elapsed().as_nanos().max(1) as u64);
            }
            Err(e) => {
                st2.errors.fetch_add(1, Ordering::Relaxed);
                *st2.last_error.lock() = Some(e);
            }
        }
        if st2.stop.load(Ordering::Relaxed) {
            finish(&st2);
        } else {
            issue(h2, st2.clone(), p2);
        }
    });
    if let Err(e) = r {
        st.errors.fetch_add(1, Ordering::Relaxed);
        *st.last_error.lock() = Some(e);
        finish(&st);
    }
}

fn finish(st: &State) {
    if st.active.fetch_sub(1, Ordering::AcqRel) == 1 {
        let _g = st.idle.0.lock();
        st.idle.1.notify_all();
    }
}

pub(crate) struct Ours {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) last_error: Option<CallError>,
    pub(crate) secs: f64,
    /// Latencies in nanoseconds (see [`Ours::us`]).
    pub(crate) hist: Histogram<u64>,
    cli_cpu: Duration,
    srv_cpu: Option<Duration>,
}

impl Ours {
    /// A latency quantile in microseconds (fractions kept).
    pub(crate) fn us(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// `conc` calls in flight to `node` for `dur`.
pub(crate) fn run_calls(h: &Handle, node: &str, p: &Bytes, conc: usize, dur: Duration, srv_pid: Option<u32>) -> Ours {
    let st = Arc::new(State {
        node: node.to_string(),
        stop: AtomicBool::new(false),
        active: AtomicUsize::new(conc),
        calls: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        last_error: Mutex::new(None),
        hist: Mutex::new(Histogram::new_with_bounds(1, 120_000_000_000, 3).unwrap()),
        idle: (Mutex::new(()), Condvar::new()),
    });
    let cpu0 = self_cpu();
    let srv0 = srv_pid.and_then(pid_cpu);
    let t0 = Instant::now();
    h.batch(|| {
        for _ in 0..conc {
            issue(h.clone(), st.clone(), p.clone());
        }
    });
    std::thread::sleep(dur);
    st.stop.store(true, Ordering::Relaxed);
    {
        let mut g = st.idle.0.lock();
        while st.active.load(Ordering::Acquire) > 0 {
            st.idle.1.wait_for(&mut g, Duration::from_millis(50));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cli_cpu = self_cpu() - cpu0;
    let srv_cpu = match (srv0, srv_pid.and_then(pid_cpu)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let hist = st.hist.lock().clone();
    let last_error = st.last_error.lock().clone();
    Ours {
        calls: st.calls.load(Ordering::Relaxed),
        errors: st.errors.load(Ordering::Relaxed),
        last_error,
        secs,
        hist,
        cli_cpu,
        srv_cpu,
    }
}

fn sink_count(h: &Handle, node: &str) -> Result<i64, String> {
    let mut p = Vec::new();
    skynet_cluster::seri::encode_integer_into(&mut p, 0);
    let r = h.call(node, Address::Name(b"@sink"), &p, Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    match skynet_cluster::seri::decode(&r).map_err(|e| e.to_string())?.first() {
        Some(skynet_cluster::seri::Value::Integer(n)) => Ok(*n),
        other => Err(format!("@sink answered {other:?}, not an integer")),
    }
}

struct PushResult {
    rate: f64,
    sent: u64,
    overloaded: u64,
    cli_cpu: Duration,
    srv_cpu: Option<Duration>,
}

fn run_push(h: &Handle, node: &str, p: &[u8], dur: Duration, srv_pid: Option<u32>) -> Result<PushResult, String> {
    let before = sink_count(h, node)?;
    let cpu0 = self_cpu();
    let srv0 = srv_pid.and_then(pid_cpu);
    let t0 = Instant::now();
    let (mut sent, mut overloaded) = (0u64, 0u64);
    while t0.elapsed() < dur {
        let mut full = false;
        h.batch(|| {
            for _ in 0..256 {
                match h.push(node, Address::Name(b"@sink"), p) {
                    Ok(()) => sent += 1,
                    Err(CallError::Overloaded) => {
                        overloaded += 1;
                        full = true;
                        break;
                    }
                    Err(_) => {
                        full = true;
                        break;
                    }
                }
            }
        });
        if full {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    // Pushes and calls keep their order on a link: this answer comes after every push.
    let after = sink_count(h, node)?;
    let secs = t0.elapsed().as_secs_f64();
    let cli_cpu = self_cpu() - cpu0;
    let srv_cpu = match (srv0, srv_pid.and_then(pid_cpu)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Ok(PushResult { rate: (after - before) as f64 / secs, sent, overloaded, cli_cpu, srv_cpu })
}

fn per100k(cpu: Duration, calls: u64) -> f64 {
    if calls == 0 {
        return f64::NAN;
    }
    cpu.as_secs_f64() * 100_000.0 / calls as f64
}

pub(crate) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

/// The flags that take a value, checked before anything runs (errors are usage errors).
struct Opts {
    dur: Duration,
    size_list: Option<Vec<Option<usize>>>,
    conc_list: Option<Vec<usize>>,
    server_pid: Option<u32>,
    heartbeat: Option<Heartbeat>,
    hold_links: Option<usize>,
    tls: Tls,
    /// `--vs-plain`: the rounds.
    vs_plain: Option<usize>,
}

fn opts(a: &Args) -> Result<Opts, String> {
    let dur = match a.num::<f64>("duration")? {
        Some(d) if !d.is_finite() || d < 0.0 => return Err(format!("--duration: `{d}` is not a number of seconds")),
        d => Duration::from_secs_f64(d.unwrap_or(2.0).clamp(0.05, 1e9)),
    };
    // Comma-separated lists run every combination (e.g. --size 64k,1m --conc 8,64).
    let size_list = a
        .get("size")
        .map(|s| s.split(',').map(|x| parse_size(x).map_err(|e| format!("--size: {e}"))).collect())
        .transpose()?;
    let conc_list = a
        .get("conc")
        .map(|s| s.split(',').map(|c| c.trim().parse().map_err(|_| format!("--conc: `{c}` is not a number"))).collect())
        .transpose()?;
    let heartbeat = a.secs_or_off("heartbeat")?.flatten().map(Heartbeat::every);
    let hold_links = a.count("hold-links")?;
    let tls = tlsflags::parse(|f| a.get(f), true)?;
    let rounds = a.count("rounds")?;
    let vs_plain = match (a.flag("vs-plain"), rounds) {
        (false, Some(_)) => return Err("--rounds goes with --vs-plain".into()),
        (false, None) => None,
        (true, _) if !tls.on() => return Err("--vs-plain needs --tls prefer or require (and its files)".into()),
        (true, _) if a.flag("push") || hold_links.is_some() => {
            return Err("--vs-plain compares calls: no --push, no --hold-links".into())
        }
        (true, r) => Some(r.unwrap_or(1)),
    };
    Ok(Opts { dur, size_list, conc_list, server_pid: a.num("server-pid")?, heartbeat, hold_links, tls, vs_plain })
}

fn run(a: &Args, o: Opts) -> Result<(), String> {
    let Opts { dur, size_list, conc_list, mut server_pid, heartbeat, hold_links, tls, vs_plain } = o;
    let no_floor = a.flag("no-floor");
    let size_arg = size_list.as_ref().map(|l| l[0]);
    let conc_arg = conc_list.as_ref().map(|l| l[0]);
    let _child;
    let target = match a.get("connect") {
        Some(c) => c.to_string(),
        None => {
            let (c, addr) = spawn_server(&tls)?;
            server_pid = Some(c.0.id());
            _child = c;
            addr
        }
    };
    if let Some(rounds) = vs_plain {
        let rows = super::vsplain::Rows { sizes: size_list, concs: conc_list, dur, rounds };
        return super::vsplain::run(&target, &tls, heartbeat, rows);
    }
    let node = calls_node(&target, &tls, heartbeat)?;
    let h = node.handle();
    let peer = tls.peer.as_str();
    println!(
        "skynet-cluster bench -> {target}  ({} per measurement{}; server pid {})",
        fmt_dur(dur),
        if no_floor { ", no floor" } else { "" },
        server_pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into())
    );

    let _held = match hold_links {
        Some(n) if n > 0 => Some(super::hold::hold_links(&target, n, &payload(None), server_pid)?),
        _ => None,
    };
    let matrix = size_arg.is_none() && conc_arg.is_none();
    let push_only = a.flag("push");
    if matrix && tls.on() {
        println!("idle link memory: not measured with --tls (256 links would need 256 node names)");
    } else if matrix {
        // First, while both processes are fresh: RSS only grows, so later it would hide this.
        idle_links(&target, server_pid, heartbeat)?;
    }
    if !push_only {
        let sizes: Vec<Option<usize>> = if matrix {
            vec![None, Some(1024), Some(16 << 10), Some(64 << 10), Some(1 << 20)]
        } else {
            size_list.clone().unwrap_or(vec![None])
        };
        let concs: Vec<usize> = if matrix { vec![1, 8, 64, 256] } else { conc_list.clone().unwrap_or(vec![1]) };
        println!(
            "{:<6}{:>5} {:>10} {:>6} {:>9} {:>8} {:>6} {:>8} {:>9} {:>10} {:>6} {:>10} {:>6} {:>7}",
            "size",
            "conc",
            "calls/s",
            "xF",
            "MB/s",
            "p50us",
            "xF",
            "p99us",
            "p99.9us",
            "cli s/100k",
            "xF",
            "srv s/100k",
            "xF",
            "errors"
        );
        for &size in &sizes {
            let p = Bytes::from(payload(size));
            let req_frame = p.len() + 13; // length prefix + 0x80 + name len + "@echo" + session
            for &conc in &concs {
                let ours = run_calls(&h, peer, &p, conc, dur, server_pid);
                let fl = (!no_floor).then(|| floor::pingpong(req_frame, conc, dur));
                print_row(&label(size), conc, p.len(), &ours, fl.as_ref());
                if let Some(e) = &ours.last_error {
                    println!("      last error: {e}");
                }
            }
        }
    }
    if push_only || matrix {
        // Pushes: a small queue, so that overload shows up as 'overloaded' errors instead of
        // memory.
        let cfg = Config { max_send_queue: 4 << 20, heartbeat, tls: tls.cfg.clone(), ..Config::default() };
        let pnode = Node::new(cfg).map_err(|e| e.to_string())?;
        pnode.reload(&[(peer, Some(&target))]);
        let ph = pnode.handle();
        let size = size_arg.flatten();
        let p = payload(size);
        let r = run_push(&ph, peer, &p, dur, server_pid)?;
        let (frate, fcli, fsrv) = if no_floor {
            (f64::NAN, Duration::ZERO, Duration::ZERO)
        } else {
            let (rate, c, s) = floor::oneway(p.len() + 13, dur);
            (rate, c, s)
        };
        let fcount = (frate * dur.as_secs_f64()) as u64;
        println!(
            "pushes ({}): {:.0}/s at the receiver (xF {}; floor {:.0} frames/s one-way), sent {}, overloaded {} times; \
             cli {:.3} s/100k (floor {:.3}), srv {} s/100k (floor {:.3})",
            label(size),
            r.rate,
            ratio(r.rate, frate),
            frate,
            r.sent,
            r.overloaded,
            per100k(r.cli_cpu, r.sent),
            per100k(fcli, fcount),
            r.srv_cpu.map(|c| format!("{:.3}", per100k(c, r.sent))).unwrap_or_else(|| "-".into()),
            per100k(fsrv, fcount),
        );
    }
    let srv_rss = server_pid.and_then(pid_peak_rss_kib);
    println!(
        "peak RSS: client {:.1} MiB, server {}",
        self_peak_rss_kib() as f64 / 1024.0,
        srv_rss.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "unknown".into())
    );
    Ok(())
}

/// The node calls are made from, its one peer `target` (named `tls.peer`), which has
/// answered one call: a queue (and a node send budget: 224 MiB by default) large enough for
/// 256 x 1 MiB in flight.
pub(crate) fn calls_node(target: &str, tls: &Tls, heartbeat: Option<Heartbeat>) -> Result<Node, String> {
    let cfg = Config {
        max_send_queue: 1 << 30,
        max_send_total: 1 << 30,
        heartbeat,
        tls: tls.cfg.clone(),
        ..Config::default()
    };
    let node = Node::new(cfg).map_err(|e| e.to_string())?;
    node.reload(&[(tls.peer.as_str(), Some(target))]);
    node.call(&tls.peer, Address::Name(b"@echo"), &payload(None), Some(Duration::from_secs(10)))
        .map_err(|e| format!("{target} does not answer @echo: {e}"))?;
    Ok(node)
}

pub(crate) fn fmt_dur(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn print_row(size: &str, conc: usize, plen: usize, o: &Ours, fl: Option<&floor::Floor>) {
    let rate = o.calls as f64 / o.secs;
    let mbs = rate * plen as f64 / 1e6;
    let p50 = o.us(0.5).round();
    let cli = per100k(o.cli_cpu, o.calls);
    let srv = o.srv_cpu.map(|c| per100k(c, o.calls)).unwrap_or(f64::NAN);
    let (frate, fp50, fcli, fsrv) = match fl {
        Some(f) => (
            f.calls as f64 / f.secs,
            f.hist.value_at_quantile(0.5) as f64,
            per100k(f.cli_cpu, f.calls),
            per100k(f.srv_cpu, f.calls),
        ),
        None => (f64::NAN, f64::NAN, f64::NAN, f64::NAN),
    };
    println!(
        "{:<6}{:>5} {:>10.0} {:>6} {:>9.1} {:>8} {:>6} {:>8} {:>9} {:>10.3} {:>6} {:>10} {:>6} {:>7}",
        size,
        conc,
        rate,
        ratio(rate, frate),
        mbs,
        p50,
        ratio(p50, fp50),
        o.us(0.99).round(),
        o.us(0.999).round(),
        cli,
        ratio(cli, fcli),
        if srv.is_finite() { format!("{srv:.3}") } else { "-".into() },
        ratio(srv, fsrv),
        o.errors
    );
    if let Some(f) = fl {
        println!(
            "{:<6}{:>5} {:>10.0} {:>6} {:>9.1} {:>8} {:>6} {:>8} {:>9} {:>10.3} {:>6} {:>10.3} {:>6} {:>7}",
            "floor",
            conc,
            frate,
            "",
            frate * plen as f64 / 1e6,
            f.hist.value_at_quantile(0.5),
            "",
            f.hist.value_at_quantile(0.99),
            f.hist.value_at_quantile(0.999),
            fcli,
            "",
            fsrv,
            "",
            ""
        );
    }
}

/// Opens many links, makes one call on each, and reports the memory each idle link costs
/// (RSS growth per link on both sides; kernel socket buffers are not in RSS).
fn idle_links(target: &str, server_pid: Option<u32>, heartbeat: Option<Heartbeat>) -> Result<(), String> {
    const N: usize = 256;
    let names: Vec<String> = (0..N).map(|i| format!("idle{i}")).collect();
    let c0 = self_rss_kib();
    let s0 = server_pid.and_then(pid_rss_kib);
    let node = Node::new(Config { heartbeat, ..Config::default() }).map_err(|e| e.to_string())?;
    let map: Vec<(&str, Option<&str>)> = names.iter().map(|n| (n.as_str(), Some(target))).collect();
    node.reload(&map);
    let p = payload(None);
    for n in &names {
        node.call(n, Address::Name(b"@echo"), &p, Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    }
    std::thread::sleep(Duration::from_millis(100));
    let c1 = self_rss_kib();
    let s1 = server_pid.and_then(pid_rss_kib);
    println!(
        "idle link memory ({N} links, one call each): client {:.1} KiB/link, server {}",
        c1.saturating_sub(c0) as f64 / N as f64,
        match (s0, s1) {
            (Some(a), Some(b)) => format!("{:.1} KiB/link", b.saturating_sub(a) as f64 / N as f64),
            _ => "unknown".into(),
        }
    );
    Ok(())
}

fn self_rss_kib() -> u64 {
    pid_rss_kib(std::process::id()).unwrap_or(0)
}
