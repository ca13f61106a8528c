//! `skynet-cluster call / push / query` against our own node over loopback: Lua literal
//! arguments are packed with skynet.pack, answers printed as Lua literals, remote errors on
//! stderr with exit code 1, usage errors 2, transport errors 3.

use skynet_cluster::engine::{Address, Config, FnService, Inbound, Node, Responder};
use skynet_cluster::seri::{self, Value};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ECHO: u32 = 1;
const FAIL: u32 = 4;

struct Server {
    _node: Node,
    addr: String,
    pushes: Arc<Mutex<Vec<Vec<Value>>>>,
    names: Arc<AtomicUsize>,
}

/// `@echo` (1) answers its arguments; 4 fails with `boom`; `.db` answers "value of <key>" to
/// `"GET", key`; pushes are recorded decoded.
fn server() -> Server {
    let node = Node::new(Config::default()).unwrap();
    let addr = node.listen("127.0.0.1:0").unwrap().to_string();
    node.register("echo", ECHO).expect("echo is not reserved");
    let pushes = Arc::new(Mutex::new(Vec::new()));
    let names = Arc::new(AtomicUsize::new(0));
    let (p2, n2) = (pushes.clone(), names.clone());
    node.set_service(Arc::new(FnService {
        call: move |req: Inbound<'_>, r: Responder| match req.addr {
            Address::Id(ECHO) => r.ok(req.payload),
            Address::Id(FAIL) => r.error(b"boom"),
            Address::Name(b".db") => {
                n2.fetch_add(1, Ordering::SeqCst);
                let v = seri::decode(req.payload).unwrap();
                let key = v[1].as_bytes().unwrap().to_vec();
                let mut ans = b"value of ".to_vec();
                ans.extend_from_slice(&key);
                r.ok(&seri::encode(&[Value::String(ans)]).unwrap())
            }
            _ => r.error(b"no such service"),
        },
        push: move |req: Inbound<'_>| {
            p2.lock().unwrap().push(seri::decode(req.payload).unwrap());
        },
    }));
    Server { _node: node, addr, pushes, names }
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skynet-cluster")).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn call_prints_lua_literals() {
    let s = server();
    let o = cli(&["call", &s.addr, "@echo", r#""GET""#, r#""a""#, "42", "-1.5", r#"{x=1,"y"}"#, "true", "nil"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o), "\"GET\"\n\"a\"\n42\n-1.5\n{\"y\", x = 1}\ntrue\nnil\n");
    // Numeric addresses in three spellings, by name to a `.local` service.
    for a in ["1", "0x1", ":00000001"] {
        let o = cli(&["call", &s.addr, a, "'\\0bin\\255'"]);
        assert_eq!(stdout(&o), "\"\\000bin\\255\"\n", "{a}");
    }
    let o = cli(&["call", &s.addr, ".db", r#""GET""#, r#""a""#]);
    assert_eq!(stdout(&o), "\"value of a\"\n");
    assert_eq!(s.names.load(Ordering::SeqCst), 1);
    // A large argument goes multi-part both ways.
    let big = format!("\"{}\"", "x".repeat(100_000));
    let o = cli(&["call", &s.addr, "@echo", &big]);
    assert_eq!(stdout(&o).trim_end(), big);
}

#[test]
fn errors_and_exit_codes() {
    let s = server();
    let o = cli(&["call", &s.addr, "4"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim_end(), "boom");
    let o = cli(&["call", &s.addr, "@nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim_end(), "Invalid name");
    // Usage: an unquoted string, a missing address, a bad timeout.
    for args in
        [vec!["call", &s.addr, "@echo", "GET"], vec!["call", &s.addr], vec!["call", "--timeout", "x", &s.addr, "1"]]
    {
        let o = cli(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    assert!(String::from_utf8_lossy(&cli(&["call", &s.addr, "@echo", "GET"]).stderr).contains("'\"GET\"'"));
    // Nobody listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let o = cli(&["call", "--timeout", "5000", &dead, "1"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let o = cli(&["push", "--timeout", "5000", &dead, "1"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
}

#[test]
fn push_and_query() {
    let s = server();
    let o = cli(&["push", &s.addr, "@echo", r#""PING""#, "7"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let big = format!("\"{}\"", "p".repeat(70_000));
    let o = cli(&["push", &s.addr, "1", &big]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let start = Instant::now();
    while s.pushes.lock().unwrap().len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "pushes not received");
        std::thread::sleep(Duration::from_millis(2));
    }
    let p = s.pushes.lock().unwrap();
    assert_eq!(p[0], vec![Value::from("PING"), Value::Integer(7)]);
    assert_eq!(p[1][0].as_bytes().unwrap().len(), 70_000);
    drop(p);
    let o = cli(&["query", &s.addr, "echo"]);
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), "1\n".to_string()));
    let o = cli(&["query", &s.addr, "@echo"]);
    assert_eq!(stdout(&o), "1\n");
    let o = cli(&["query", &s.addr, "missing"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim_end(), "name not found");
}
