//! `call`, `push`, `query`: redis-cli for a skynet cluster. Arguments are Lua literals
//! (`'"GET"' '"a"'`, `42`, `'{x=1,"y"}'`), packed with skynet.pack; answers are printed as Lua
//! literals, one value per line. A remote error prints its text on stderr and exits 1; usage
//! errors exit 2 (one line); transport errors (connect, timeout, link down, heartbeat) exit 3.

use super::args::{parse_secs, usage_error};
use super::literal;
use super::tlsflags::{self, Tls};
use skynet_cluster::engine::{Address, CallError, Config, Heartbeat, Node, HEARTBEAT_NAME};
use skynet_cluster::seri;
use std::collections::HashMap;
use std::time::Duration;

const DEFAULT_TIMEOUT_MS: u64 = 10_000;

const USAGE: &str = "\
USAGE:
    skynet-cluster call  [--timeout MS] [--heartbeat SECS] [TLS] HOST:PORT ADDR [ARGS...]
    skynet-cluster push  [--timeout MS] [--heartbeat SECS] [TLS] HOST:PORT ADDR [ARGS...]
    skynet-cluster query [--timeout MS] [--heartbeat SECS] [TLS] HOST:PORT NAME

ADDR is a service name (`@sdb` for a name registered with cluster.register, `.db` for a
skynet local name) or a numeric address (`10`, `0x0a`, `:0000000a`). ARGS are Lua literals,
quoted for the shell: '\"GET\"' '\"a\"' 42 '{x=1,\"y\"}' true nil. The answer is printed as Lua
literals, one value per line. A push prints nothing; it exits 0 once the node has read it
(a name query sent behind it was answered). Flags go before HOST:PORT.

FLAGS:
    --timeout MS      milliseconds to wait (default 10000, 0 = forever)
    --heartbeat SECS  while waiting, probe the link when nothing arrived for SECS seconds and
                      give up after SECS more without an answer (a frozen peer), instead of
                      waiting for the timeout (decimals allowed; default 0 = off)

";

const EXIT: &str = "
Against `serve --tls require` a plain client is refused: a call or query gets the node's
error (`tls required: ...`, exit 1), a push has its link closed (exit 3). With --tls require,
a node that does not speak TLS, a certificate the CA did not sign or one that does not carry
--tls-name fail the command with the reason (exit 3).

EXIT: 0 ok, 1 remote error (its text on stderr), 2 usage, 3 connect/timeout/link/TLS errors.
";

struct Cmd {
    target: String,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
    /// TLS settings, and the node map's name for the target (`--tls-name` or `target`).
    tls: Tls,
    rest: Vec<String>,
}

/// Why a subcommand could not run: bad usage (exit 2, one line) or an operational failure
/// before any request was sent (exit 3).
enum Fail {
    Usage(String),
    Op(String),
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Usage(s)
    }
}

impl From<&str> for Fail {
    fn from(s: &str) -> Self {
        Fail::Usage(s.to_string())
    }
}

/// `--help` (an empty usage error: the usage is printed, exit 0).
const HELP: &str = "";

fn parse(argv: Vec<String>, min_rest: usize) -> Result<Cmd, Fail> {
    let mut it = argv.into_iter().peekable();
    let mut timeout = Some(Duration::from_millis(DEFAULT_TIMEOUT_MS));
    let mut heartbeat = None;
    let mut tls_values: HashMap<String, String> = HashMap::new();
    // Options come first: ARGS may be negative numbers.
    while let Some(a) = it.peek() {
        if a == "--help" || a == "-h" {
            return Err(HELP.into());
        }
        let Some(flag) = a.strip_prefix("--").map(str::to_string) else { break };
        it.next();
        let (name, v) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (flag.clone(), it.next().ok_or_else(|| format!("--{flag} needs a value"))?),
        };
        match name.as_str() {
            "timeout" => {
                let ms: u64 = v.parse().map_err(|_| format!("--timeout: `{v}` is not a number of milliseconds"))?;
                timeout = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "heartbeat" => heartbeat = parse_secs(&v).map_err(|e| format!("--heartbeat: {e}"))?,
            n if tlsflags::CLIENT_FLAGS.contains(&n) => {
                tls_values.insert(name, v);
            }
            _ => return Err(format!("unknown flag --{name}").into()),
        }
    }
    let tls = tlsflags::parse(|f| tls_values.get(f).map(String::as_str), true)?;
    let target = it.next().ok_or("missing HOST:PORT")?;
    let rest: Vec<String> = it.collect();
    if rest.len() < min_rest {
        return Err("missing ADDR".into());
    }
    Ok(Cmd { target, timeout, heartbeat, tls, rest })
}

/// `@name` / `.name` / other text -> a name; `10`, `0x0a`, `:0000000a` -> a number.
fn address(s: &str) -> Result<Address<'_>, String> {
    let num = if let Some(h) = s.strip_prefix(':').or_else(|| s.strip_prefix("0x")) {
        u32::from_str_radix(h, 16).ok()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u32>().ok()
    } else {
        None
    };
    match num {
        Some(n) => Ok(Address::Id(n)),
        None if s.is_empty() || s.len() > 255 => Err(format!("address `{s}`: a name must be 1..255 bytes")),
        None => Ok(Address::Name(s.as_bytes())),
    }
}

fn payload(args: &[String]) -> Result<Vec<u8>, String> {
    let values = args
        .iter()
        .enumerate()
        .map(|(i, a)| literal::parse(a).map_err(|e| format!("argument {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    seri::encode(&values).map_err(|e| format!("cannot pack the arguments: {e}"))
}

/// A node for one command. `cmd` names it in log lines; the engine's lines about links going
/// down are not shown (the command reports its own failure, with the same reason).
fn node(c: &Cmd, cmd: &'static str) -> Result<Node, Fail> {
    let cfg = Config {
        nowaiting: true,
        heartbeat: c.heartbeat.map(Heartbeat::every),
        log: Some(super::sys::log_hook(cmd, false, false)),
        tls: c.tls.cfg.clone(),
        ..Config::default()
    };
    let node = Node::new(cfg).map_err(|e| Fail::Op(format!("cannot start a node: {e}")))?;
    node.reload(&[(c.tls.peer.as_str(), Some(&c.target))]);
    Ok(node)
}

fn usage(cmd: &str, e: String) -> i32 {
    if e.is_empty() {
        print!("{USAGE}{}{EXIT}", tlsflags::CLIENT_HELP);
        return 0;
    }
    usage_error(cmd, &e)
}

fn call_error(e: CallError) -> i32 {
    match e {
        CallError::Remote(text) => {
            eprintln!("{}", String::from_utf8_lossy(&text));
            1
        }
        e => {
            eprintln!("skynet-cluster: {e}");
            3
        }
    }
}

fn print_answer(bytes: &[u8]) {
    match seri::decode(bytes) {
        Ok(values) => {
            for v in &values {
                println!("{}", literal::print(v));
            }
        }
        Err(e) => {
            eprintln!("skynet-cluster: the answer is not skynet.pack data ({e}); printed as one string");
            println!("{}", literal::print(&seri::Value::String(bytes.to_vec())));
        }
    }
}

pub fn call(argv: Vec<String>) -> i32 {
    let run = || -> Result<i32, Fail> {
        let c = parse(argv, 1)?;
        let addr = address(&c.rest[0])?;
        let p = payload(&c.rest[1..])?;
        let node = node(&c, "call")?;
        Ok(match node.call(&c.tls.peer, addr, &p, c.timeout) {
            Ok(answer) => {
                print_answer(&answer);
                0
            }
            Err(e) => call_error(e),
        })
    };
    finish("call", run())
}

pub fn push(argv: Vec<String>) -> i32 {
    let run = || -> Result<i32, Fail> {
        let c = parse(argv, 1)?;
        let addr = address(&c.rest[0])?;
        let p = payload(&c.rest[1..])?;
        let node = node(&c, "push")?;
        if let Err(e) = node.push(&c.tls.peer, addr, &p) {
            return Ok(call_error(e));
        }
        // A push has no answer: a name query behind it has one, and a link keeps its order,
        // so any answer (`name not found` included) means the node has read the push. A
        // failure says why (the link closed: a node with tls=require refuses a plain push;
        // a TLS refusal; a timeout).
        Ok(match node.query(&c.tls.peer, HEARTBEAT_NAME, c.timeout) {
            Ok(_) | Err(CallError::Remote(_)) => 0,
            Err(e) => call_error(e),
        })
    };
    finish("push", run())
}

pub fn query(argv: Vec<String>) -> i32 {
    let run = || -> Result<i32, Fail> {
        let c = parse(argv, 1)?;
        if c.rest.len() != 1 {
            return Err(Fail::Usage("query takes exactly one NAME".into()));
        }
        let name = c.rest[0].strip_prefix('@').unwrap_or(&c.rest[0]);
        let node = node(&c, "query")?;
        Ok(match node.query(&c.tls.peer, name, c.timeout) {
            Ok(a) => {
                println!("{a}");
                0
            }
            Err(e) => call_error(e),
        })
    };
    finish("query", run())
}

fn finish(cmd: &str, r: Result<i32, Fail>) -> i32 {
    match r {
        Ok(code) => code,
        Err(Fail::Op(e)) => {
            eprintln!("skynet-cluster {cmd}: {e}");
            3
        }
        Err(Fail::Usage(e)) => usage(cmd, e),
    }
}
