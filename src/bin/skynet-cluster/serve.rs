//! `skynet-cluster serve`: a node with `@echo` and `@sink`.

use super::args::{fmt_bytes, fmt_secs, usage_error, Args};
use super::sys::{self, Signals};
use super::tlsflags;
use skynet_cluster::engine::{Address, Config, Exposure, FnService, Heartbeat, Inbound, IpNet, Node, Responder};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const HELP: &str = "\
skynet-cluster serve: run a cluster node that serves two services.

USAGE:
    skynet-cluster serve --listen HOST:PORT [--port-file PATH] [LIMITS] [--health-every SECS]
                         [--allow CIDR,...] [--max-per-source N] [--expose ...] [TLS]

SERVICES (registered names, reachable as `@name` and through cluster.query):
    @echo   answers every call with its request payload unchanged (skynet.retpack(...) of
            what it got)
    @sink   counts pushes; a call answers the count as a skynet.pack'ed integer

FLAGS:
    --listen HOST:PORT      address to listen on (port 0: any free port)
    --port-file PATH        write the bound HOST:PORT to PATH once listening
    --health-every SECS     print the node's health (links, budgets, what its limits refused)
                            as one line every SECS seconds (default 0 = never); SIGUSR1
                            prints the same line at any time (with TLS: links encrypted,
                            plain peers refused, handshakes failed)
    --help                  this text

LIMITS (what a peer can make the node hold; BYTES take a K, M or G suffix, powers of 1024:
64K, 16M, 1G; SECS may have decimals, 0 turns the timer off):
    --max-links N           links open at once, both directions, node-wide (default 16384)
    --max-clients N         connections the listener keeps open at once (stock's maxclient;
                            default: only --max-links); one more is closed at once
    --max-reassembly BYTES  multi-part messages being joined, all links together (default 224M)
    --max-send BYTES        bytes queued to send, all links together (default 224M)
    --max-send-queue BYTES  bytes queued to send on one link (default 64M)
    --multi-timeout SECS    a multi-part message not completed within SECS closes its link
                            (default 60)
    --idle-timeout SECS     an accepted link that receives nothing for SECS is closed
                            (default 0: never, as stock)
    --heartbeat SECS        probe outbound links idle for SECS, declare them dead after SECS
                            more without an answer (default 0: off; serve opens no outbound
                            link itself)

WHO MAY CONNECT, WHAT THEY MAY CALL (default: anyone, anything, as stock):
    --allow CIDR[,CIDR...]  accept connections only from these blocks (IPv4 or IPv6, e.g.
                            10.0.0.0/8,127.0.0.1/32); others are closed before a byte is read
    --max-per-source N      links open at once from one source address
    --expose registered|NAME[,NAME...]
                            remote callers reach only the registered names (@echo, @sink), or
                            only these; numeric handles and .names answer `Invalid name`

{TLS}
At start, serve raises its soft limit on open files to the hard limit and says the new
limit on its first line. The node runs until killed.

Try TLS (one port serves TLS clients and, in prefer, plain ones):
    skynet-cluster certs /tmp/skc db1 cli
    skynet-cluster serve --listen 127.0.0.1:2528 --tls require \
        --tls-ca /tmp/skc/ca.pem --tls-cert /tmp/skc/db1.pem --tls-key /tmp/skc/db1.key
    skynet-cluster call --tls require --tls-name db1 --tls-ca /tmp/skc/ca.pem \
        --tls-cert /tmp/skc/cli.pem --tls-key /tmp/skc/cli.key 127.0.0.1:2528 @echo 42
";

pub const ECHO: u32 = 1;
pub const SINK: u32 = 2;

const VALUE_FLAGS: &[&str] = &[
    "listen",
    "port-file",
    "max-links",
    "max-clients",
    "max-reassembly",
    "max-send",
    "max-send-queue",
    "multi-timeout",
    "idle-timeout",
    "heartbeat",
    "health-every",
    "allow",
    "max-per-source",
    "expose",
];

/// The node's settings from the flags, the listener's bound, and the health period.
struct Opts {
    cfg: Config,
    max_clients: Option<usize>,
    health_every: Option<Duration>,
}

fn opts(a: &Args) -> Result<Opts, String> {
    let mut cfg = Config::default();
    if let Some(n) = a.count("max-links")? {
        cfg.max_links = n;
    }
    if let Some(n) = a.bytes("max-reassembly")? {
        cfg.max_reassembly_total = n;
    }
    if let Some(n) = a.bytes("max-send")? {
        cfg.max_send_total = n;
    }
    if let Some(n) = a.bytes("max-send-queue")? {
        cfg.max_send_queue = n;
    }
    if let Some(t) = a.secs_or_off("multi-timeout")? {
        cfg.multi_timeout = t;
    }
    if let Some(t) = a.secs_or_off("idle-timeout")? {
        cfg.idle_timeout = t;
    }
    if let Some(t) = a.secs_or_off("heartbeat")? {
        cfg.heartbeat = t.map(Heartbeat::every);
    }
    if let Some(list) = a.get("allow") {
        let nets = list.split(',').map(|c| {
            let c = c.trim();
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("--allow: `{c}` is not a CIDR block (e.g. 10.0.0.0/8) or an address"))
        });
        cfg.allow = Some(nets.collect::<Result<_, _>>()?);
    }
    cfg.max_links_per_source = a.count("max-per-source")?;
    match a.get("expose") {
        None => {}
        Some("registered") => cfg.exposure = Exposure::Registered,
        Some(list) => {
            let names: Vec<String> = list
                .split(',')
                .map(|n| n.trim().trim_start_matches('@').to_string())
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                return Err("--expose: give `registered` or names (e.g. echo,sink)".into());
            }
            cfg.exposure = Exposure::Names(names);
        }
    }
    cfg.tls = tlsflags::parse(|f| a.get(f), false)?.cfg;
    Ok(Opts { cfg, max_clients: a.count("max-clients")?, health_every: a.secs_or_off("health-every")?.flatten() })
}

/// The limits in force, for the second line serve prints.
fn limits_line(o: &Opts) -> String {
    let c = &o.cfg;
    let off = |d: Option<Duration>| d.map_or_else(|| "off".to_string(), fmt_secs);
    format!(
        "limits: links {}, clients {}, reassembly {}, send {} ({} per link), multi-part timeout {}, \
         idle timeout {}, heartbeat {}",
        c.max_links,
        o.max_clients.map_or_else(|| "-".to_string(), |n| n.to_string()),
        fmt_bytes(c.max_reassembly_total),
        fmt_bytes(c.max_send_total),
        fmt_bytes(c.max_send_queue),
        off(c.multi_timeout),
        off(c.idle_timeout),
        off(c.heartbeat.map(|h| h.interval)),
    )
}

pub fn main(argv: Vec<String>) -> i32 {
    let a = match Args::parse(argv, &[VALUE_FLAGS, tlsflags::SERVER_FLAGS].concat(), &[]) {
        Ok(a) => a,
        Err(e) => return usage_error("serve", &e),
    };
    if a.flag("help") {
        print!("{}", HELP.replace("{TLS}", tlsflags::SERVER_HELP));
        return 0;
    }
    let Some(listen) = a.get("listen") else {
        return usage_error("serve", "--listen is required");
    };
    let o = match opts(&a) {
        Ok(o) => o,
        Err(e) => return usage_error("serve", &e),
    };
    let nofile = sys::raise_nofile();
    // Before the node starts its threads, so that they inherit the mask: SIGUSR1 (health)
    // and SIGHUP (reload the certificates) are taken by sigwait below, never by a handler.
    let sigs = Signals::block(&[libc::SIGUSR1, libc::SIGHUP]);
    let cfg = Config { log: Some(sys::log_hook("serve", true, true)), ..o.cfg.clone() };
    let node = match Node::new(cfg) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("skynet-cluster serve: cannot start: {e}");
            return 1;
        }
    };
    let bound = match node.listen_with(listen, o.max_clients) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skynet-cluster serve: cannot listen on {listen}: {e}");
            return 1;
        }
    };
    install(&node);
    println!("skynet-cluster serve: listening on {bound} (services @echo, @sink; {nofile})");
    println!("skynet-cluster serve: {}", limits_line(&o));
    println!("skynet-cluster serve: {}", tlsflags::describe(&o.cfg.tls));
    if let Some(p) = a.get("port-file") {
        let tmp = format!("{p}.tmp");
        if std::fs::write(&tmp, bound.to_string()).and_then(|_| std::fs::rename(&tmp, p)).is_err() {
            eprintln!("skynet-cluster serve: cannot write {p}");
            return 1;
        }
    }
    if let Some(every) = o.health_every {
        let h = node.handle();
        std::thread::spawn(move || loop {
            std::thread::sleep(every);
            println!("{} {}", sys::timestamp(), sys::health_line(&h.health()));
        });
    }
    match sigs {
        Ok(sigs) => loop {
            match sigs.wait() {
                libc::SIGHUP => println!("{} {}", sys::timestamp(), reload_tls(&node, &o.cfg.tls)),
                _ => println!("{} {}", sys::timestamp(), sys::health_line(&node.health())),
            }
        },
        Err(e) => {
            eprintln!(
                "skynet-cluster serve: cannot block SIGUSR1 and SIGHUP ({e}); they will not print health nor reload \
                 the certificates"
            );
            loop {
                std::thread::park();
            }
        }
    }
}

/// SIGHUP: reads the certificate files again; the line to print says how it went.
fn reload_tls(node: &Node, tls: &skynet_cluster::engine::TlsConfig) -> String {
    if tls.mode == skynet_cluster::engine::TlsMode::Off {
        return "SIGHUP: tls is off, no certificates to reload".into();
    }
    match node.reload_tls() {
        Ok(()) => format!(
            "SIGHUP: tls certificates reloaded (CA {}, certificate {}, key {}); new links use them",
            tls.ca.display(),
            tls.cert.display(),
            tls.key.display()
        ),
        Err(e) => format!("SIGHUP: tls certificates not reloaded, the ones in use stay: {e}"),
    }
}

/// Registers `@echo` and `@sink` on `node` and sets their service.
pub fn install(node: &Node) {
    node.register("echo", ECHO).expect("echo is not reserved");
    node.register("sink", SINK).expect("sink is not reserved");
    let pushes = Arc::new(AtomicU64::new(0));
    let p2 = pushes.clone();
    node.set_service(Arc::new(FnService {
        call: move |req: Inbound<'_>, r: Responder| match req.addr {
            // Large answers go out from the request's own buffer, with no copy.
            Address::Id(ECHO) if skynet_cluster::wire::response_is_multi(req.payload.len()) => {
                r.ok_bytes(req.take_payload())
            }
            Address::Id(ECHO) => r.ok(req.payload),
            Address::Id(SINK) => {
                let mut out = Vec::with_capacity(9);
                skynet_cluster::seri::encode_integer_into(&mut out, p2.load(Ordering::Relaxed) as i64);
                r.ok(&out)
            }
            _ => r.error(b"Invalid name"),
        },
        push: move |req: Inbound<'_>| {
            if req.addr == Address::Id(SINK) {
                pushes.fetch_add(1, Ordering::Relaxed);
            }
        },
    }));
}
