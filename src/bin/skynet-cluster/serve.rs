//! `skynet-cluster serve`: a node with `@echo` and `@sink`.

use super::args::Args;
use skynet_cluster::engine::{Address, Config, FnService, Inbound, Node, Responder};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const HELP: &str = "\
skynet-cluster serve: run a cluster node that serves two services.

USAGE:
    skynet-cluster serve --listen HOST:PORT [--port-file PATH]

SERVICES (registered names, reachable as `@name` and through cluster.query):
    @echo   answers every call with its request payload unchanged (skynet.retpack(...) of
            what it got)
    @sink   counts pushes; a call answers the count as a skynet.pack'ed integer

FLAGS:
    --listen HOST:PORT   address to listen on (port 0: any free port)
    --port-file PATH     write the bound HOST:PORT to PATH once listening
    --help               this text

The node runs until killed.
";

pub const ECHO: u32 = 1;
pub const SINK: u32 = 2;

pub fn main(argv: Vec<String>) -> i32 {
    let a = match Args::parse(argv, &["listen", "port-file"], &[]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("skynet-cluster serve: {e}\n\n{HELP}");
            return 2;
        }
    };
    if a.flag("help") {
        print!("{HELP}");
        return 0;
    }
    let Some(listen) = a.get("listen") else {
        eprintln!("skynet-cluster serve: --listen is required\n\n{HELP}");
        return 2;
    };
    let node = match Node::new(Config::default()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("skynet-cluster serve: cannot start: {e}");
            return 1;
        }
    };
    let bound = match node.listen(listen) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skynet-cluster serve: cannot listen on {listen}: {e}");
            return 1;
        }
    };
    install(&node);
    println!("skynet-cluster serve: listening on {bound} (services @echo, @sink)");
    if let Some(p) = a.get("port-file") {
        let tmp = format!("{p}.tmp");
        if std::fs::write(&tmp, bound.to_string()).and_then(|_| std::fs::rename(&tmp, p)).is_err() {
            eprintln!("skynet-cluster serve: cannot write {p}");
            return 1;
        }
    }
    loop {
        std::thread::park();
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
