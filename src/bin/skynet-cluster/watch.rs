//! `skynet-cluster watch`: keeps a link to each target node and prints its ups and downs as
//! they happen: downs from the engine's link events, ups from the first answer on a link.

use super::args::{fmt_secs, parse_secs, usage_error, Args};
use super::sys::{self, Signals};
use skynet_cluster::engine::{
    Address, CallError, CallOpts, Config, Heartbeat, LinkDir, LinkEvent, Node, HEARTBEAT_NAME,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

const HELP: &str = "\
skynet-cluster watch: print when the links to nodes go up and down.

USAGE:
    skynet-cluster watch HOST:PORT [HOST:PORT...] [--interval SECS] [--heartbeat SECS]
                         [--count N]

Keeps a link to each node (ours or stock skynet) and prints one line per change, as it
happens, on stdout: `up` once the node answers on a new link, `down` with the reason when
the link goes down or cannot be made:

    2026-12-03 18:40:55.123 127.0.0.1:2528 up
    2026-12-03 18:41:02.480 127.0.0.1:2528 down: peer closed the connection
    2026-12-03 18:41:09.017 db.example:2528 (10.0.0.7:2528) up

A node given by host name shows the address it resolved to.

Every interval, each node is sent a name query (any answer, `name not found` included,
means alive): it keeps the link busy, and while a node is down it is the reconnect attempt
that sees it come back. Failed reconnects while a node is already down print nothing, nor
does a link to a frozen node that accepts connections but never answers.

FLAGS:
    --interval SECS   seconds between queries to each node (default 1; decimals allowed)
    --heartbeat SECS  a link that received nothing for SECS seconds is probed, and declared
                      down (\"down: heartbeat: ...\") after SECS more without an answer: how a
                      frozen peer is seen (default 5; 0 = off: only closed connections are)
    --count N         exit after printing N lines (default: run until SIGINT or SIGTERM)
    --help            this text

EXIT: 0 after SIGINT/SIGTERM or --count lines; 2 usage.
";

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

enum Msg {
    /// A link to this target connected (`down: None`; `peer`: the address it reached) or
    /// went down (`Some(reason)`).
    Link {
        node: String,
        peer: Option<String>,
        down: Option<String>,
    },
    /// The target answered a query.
    Answered {
        node: String,
    },
    Signal(libc::c_int),
}

/// What was last printed for a target.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Nothing,
    Up,
    Down,
}

struct Target {
    shown: Shown,
    /// The address the current link reached (from its up event).
    peer: Option<String>,
}

struct Opts {
    targets: Vec<String>,
    interval: Duration,
    heartbeat: Option<Duration>,
    count: Option<usize>,
}

fn opts(a: &Args) -> Result<Opts, String> {
    if a.operands.is_empty() {
        return Err("missing HOST:PORT".into());
    }
    let mut targets: Vec<String> = Vec::new();
    for t in &a.operands {
        let port_ok = t.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!("`{t}` is not HOST:PORT"));
        }
        if !targets.contains(t) {
            targets.push(t.clone());
        }
    }
    let interval = a.secs("interval")?.unwrap_or(DEFAULT_INTERVAL);
    let heartbeat = match a.get("heartbeat") {
        None => Some(DEFAULT_HEARTBEAT),
        Some(v) => parse_secs(v).map_err(|e| format!("--heartbeat: {e}"))?,
    };
    Ok(Opts { targets, interval, heartbeat, count: a.count("count")? })
}

pub fn main(argv: Vec<String>) -> i32 {
    let a = match Args::parse_with_operands(argv, &["interval", "heartbeat", "count"], &[]) {
        Ok(a) => a,
        Err(e) => return usage_error("watch", &e),
    };
    if a.flag("help") {
        print!("{HELP}");
        return 0;
    }
    let o = match opts(&a) {
        Ok(o) => o,
        Err(e) => return usage_error("watch", &e),
    };
    // Before any thread starts (the engine's included), so that only sigwait takes them.
    let sigs = match Signals::block(&[libc::SIGINT, libc::SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skynet-cluster watch: cannot block SIGINT/SIGTERM: {e}");
            return 1;
        }
    };
    let (tx, rx) = mpsc::channel::<Msg>();
    let cfg = Config {
        nowaiting: true,
        heartbeat: o.heartbeat.map(Heartbeat::every),
        // A node that is down is retried at each query, not later.
        backoff_min: Duration::from_millis(100).min(o.interval / 2),
        backoff_max: (o.interval * 3 / 4).max(Duration::from_millis(100).min(o.interval / 2)),
        log: Some(sys::log_hook("watch", false, true)),
        ..Config::default()
    };
    let node = match Node::new(cfg) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("skynet-cluster watch: cannot start a node: {e}");
            return 1;
        }
    };
    let map: Vec<(&str, Option<&str>)> = o.targets.iter().map(|t| (t.as_str(), Some(t.as_str()))).collect();
    node.reload(&map);
    let hook_tx = tx.clone();
    // On the I/O thread: no blocking, one channel send.
    node.set_link_hook(Some(Arc::new(move |e: &LinkEvent| {
        if e.dir != LinkDir::Outbound {
            return;
        }
        let msg = Msg::Link {
            node: e.node.clone(),
            peer: e.peer.map(|p| p.to_string()),
            down: e.down.as_ref().map(|r| r.to_string()),
        };
        let _ = hook_tx.send(msg);
    })));
    let stx = tx.clone();
    std::thread::spawn(move || loop {
        let _ = stx.send(Msg::Signal(sigs.wait()));
    });
    eprintln!(
        "skynet-cluster watch: {} node{}, a query every {}, heartbeat {}; Ctrl-C to stop",
        o.targets.len(),
        if o.targets.len() == 1 { "" } else { "s" },
        fmt_secs(o.interval),
        o.heartbeat.map_or_else(|| "off".to_string(), fmt_secs)
    );
    spawn_queries(node.handle(), o.targets.clone(), o.interval, tx);
    print_events(&rx, &o);
    0
}

/// ` (ADDR)`: the address a link reached, when the target was given by host name.
fn at(node: &str, peer: Option<&str>) -> String {
    match peer {
        Some(p) if !resolves_to(node, p) => format!(" ({p})"),
        _ => String::new(),
    }
}

/// A connect error seen during the backoff says when the next attempt is: not news.
fn strip_retry(why: &str) -> &str {
    match why.rfind(" (next attempt in ") {
        Some(i) => &why[..i],
        None => why,
    }
}

/// `node` is `peer`, or an IP:port spelling of it.
fn resolves_to(node: &str, peer: &str) -> bool {
    node == peer || node.parse::<std::net::SocketAddr>().is_ok_and(|a| a.to_string() == peer)
}

/// Queries every target each `interval` (one query out per target at a time): any answer
/// proves the node alive; a connect that fails before a link exists is reported as down.
fn spawn_queries(h: skynet_cluster::engine::Handle, targets: Vec<String>, interval: Duration, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        let mut query = Vec::new();
        skynet_cluster::seri::encode_str_into(&mut query, HEARTBEAT_NAME.as_bytes()).expect("a short name");
        let busy: Vec<Arc<AtomicBool>> = targets.iter().map(|_| Arc::new(AtomicBool::new(false))).collect();
        let timeout = Some(interval.max(Duration::from_secs(5)));
        loop {
            for (t, busy) in targets.iter().zip(&busy) {
                if busy.swap(true, Ordering::AcqRel) {
                    continue; // the last one is still out
                }
                let (b, atx, node) = (busy.clone(), tx.clone(), t.clone());
                let opts = CallOpts { timeout, trace: None };
                // Any answer proves the node alive (a stock node answers an unknown
                // name with `name not found`); failures only free the slot: the link
                // events say what happened to the link.
                let r = h.call_with(t, Address::Id(0), &query, opts, move |r| {
                    if matches!(r, Ok(_) | Err(CallError::Remote(_))) {
                        let _ = atx.send(Msg::Answered { node });
                    }
                    b.store(false, Ordering::Release);
                });
                if let Err(e) = r {
                    busy.store(false, Ordering::Release);
                    // A connect that failed before any link existed (refused at once,
                    // a name that does not resolve) has no link event of its own.
                    if let CallError::ConnectFailed(why) = e {
                        let down = Some(strip_retry(&why).to_string());
                        let _ = tx.send(Msg::Link { node: t.clone(), peer: None, down });
                    }
                }
            }
            std::thread::sleep(interval);
        }
    });
}

/// Prints one line per change of a target's state (up once it answered on a link, down with
/// the reason) until a signal, or `--count` lines.
fn print_events(rx: &mpsc::Receiver<Msg>, o: &Opts) {
    let mut targets: HashMap<String, Target> =
        o.targets.iter().map(|t| (t.clone(), Target { shown: Shown::Nothing, peer: None })).collect();
    let mut printed = 0usize;
    while let Ok(msg) = rx.recv() {
        let line = match msg {
            Msg::Signal(sig) => {
                eprintln!("skynet-cluster watch: {}, exiting", sys::signal_name(sig));
                break;
            }
            // Connected: remembered, printed as up once the node answers on it (a frozen
            // node may still accept connections).
            Msg::Link { node, peer, down: None } => {
                if let Some(t) = targets.get_mut(&node) {
                    t.peer = peer;
                }
                continue;
            }
            Msg::Link { node, peer, down: Some(why) } => {
                let Some(t) = targets.get_mut(&node) else { continue };
                if t.shown == Shown::Down {
                    continue;
                }
                t.shown = Shown::Down;
                let peer = peer.or(t.peer.take());
                format!("{node}{} down: {why}", at(&node, peer.as_deref()))
            }
            Msg::Answered { node } => {
                let Some(t) = targets.get_mut(&node) else { continue };
                if t.shown == Shown::Up {
                    continue;
                }
                t.shown = Shown::Up;
                format!("{node}{} up", at(&node, t.peer.as_deref()))
            }
        };
        println!("{} {line}", sys::timestamp());
        printed += 1;
        if o.count.is_some_and(|n| printed >= n) {
            break;
        }
    }
}
