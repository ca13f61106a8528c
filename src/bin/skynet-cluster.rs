//! `skynet-cluster`: run a node that serves `@echo`/`@sink`, load-test one, call it, or
//! watch links to nodes go up and down.
//!
//! Arguments are parsed by hand (src/bin/skynet-cluster/args.rs): a few subcommands with a
//! handful of flags do not justify clap's compile time and binary size, and the library
//! crate stays free of CLI dependencies.

#[path = "skynet-cluster/args.rs"]
mod args;
#[path = "skynet-cluster/bench.rs"]
mod bench;
#[cfg(feature = "tls")]
#[path = "skynet-cluster/certs.rs"]
mod certs;
#[path = "skynet-cluster/cli.rs"]
mod cli;
#[path = "skynet-cluster/floor.rs"]
mod floor;
#[path = "skynet-cluster/hold.rs"]
mod hold;
#[path = "skynet-cluster/literal.rs"]
mod literal;
#[path = "skynet-cluster/procstat.rs"]
mod procstat;
#[path = "skynet-cluster/serve.rs"]
mod serve;
#[path = "skynet-cluster/sys.rs"]
mod sys;
#[path = "skynet-cluster/tlsflags.rs"]
mod tlsflags;
#[path = "skynet-cluster/vsplain.rs"]
mod vsplain;
#[path = "skynet-cluster/watch.rs"]
mod watch;

const USAGE: &str = "\
skynet-cluster: skynet's cluster layer, native.

USAGE:
    skynet-cluster serve --listen HOST:PORT [--port-file PATH] [--max-links N] [--max-clients N]
                         [--allow CIDR,...] [--expose NAME,...] [TLS] ...
    skynet-cluster bench [--connect HOST:PORT] [--size N] [--conc N] [--duration S] [--push]
                         [TLS] [--vs-plain] ...
    skynet-cluster call|push [--timeout MS] [--heartbeat SECS] [TLS] HOST:PORT ADDR [ARGS...]
                                                         (ARGS: Lua literals)
    skynet-cluster query [--timeout MS] [--heartbeat SECS] [TLS] HOST:PORT NAME
    skynet-cluster watch HOST:PORT [HOST:PORT...] [--interval SECS] [--heartbeat SECS] [--count N]
    skynet-cluster certs [--days N] DIR NODE [NODE...]
    skynet-cluster help | --help

TLS: --tls off|prefer|require --tls-ca FILE --tls-cert FILE --tls-key FILE, and for the
clients --tls-name NAME (the node name the server's certificate carries).

Run `skynet-cluster <subcommand> --help` for the flags of each subcommand.
";

fn main() {
    let mut argv = std::env::args().skip(1);
    let code = match argv.next().as_deref() {
        Some("serve") => serve::main(argv.collect()),
        Some("bench") => bench::main(argv.collect()),
        Some("call") => cli::call(argv.collect()),
        Some("push") => cli::push(argv.collect()),
        Some("query") => cli::query(argv.collect()),
        Some("watch") => watch::main(argv.collect()),
        #[cfg(feature = "tls")]
        Some("certs") => certs::main(argv.collect()),
        #[cfg(not(feature = "tls"))]
        Some("certs") => {
            eprintln!("skynet-cluster certs: this build has no TLS (the crate's `tls` feature is off)");
            1
        }
        Some("help") | Some("--help") | Some("-h") => {
            print!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("skynet-cluster: unknown subcommand `{other}` (see `skynet-cluster --help`)");
            2
        }
        None => {
            eprint!("{USAGE}");
            2
        }
    };
    std::process::exit(code);
}
