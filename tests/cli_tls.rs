//! The shell tool's TLS (issue 14, part 4), as processes over loopback: `certs` writes a CA
//! and node certificates (and reuses the CA), `serve --tls` with `call`/`push`/`query`
//! `--tls --tls-name`, the refusals (a wrong name, another CA, a plain client against
//! `require`, a `require` client against a plain node) exit 3 with the reason, a missing
//! certificate flag is a usage error, SIGHUP reloads the certificates, and `bench --vs-plain`
//! prints its table. Tests that need the engine's TLS core (the hello and the rustls link)
//! say so in their names' doc.

#![cfg(feature = "tls")]

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_skynet-cluster");
/// Bound on anything the tests wait for (generous for a loaded machine).
const WAIT: Duration = Duration::from_secs(30);

fn cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh directory under the target's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("skc-cli-tls-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        TempDir(d)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    fn s(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `certs DIR NODE...`, which must succeed.
fn certs(dir: &TempDir, nodes: &[&str]) -> String {
    let mut args = vec!["certs", dir.0.to_str().unwrap()];
    args.extend_from_slice(nodes);
    let o = cli(&args);
    assert_eq!(o.status.code(), Some(0), "certs {nodes:?}: {o:?}");
    text(&o.stdout)
}

/// The TLS flags for `node`'s files in `dir` (CA, certificate, key).
fn tls_files(dir: &TempDir, node: &str) -> Vec<String> {
    vec![
        "--tls-ca".into(),
        dir.file("ca.pem"),
        "--tls-cert".into(),
        dir.file(&format!("{node}.pem")),
        "--tls-key".into(),
        dir.file(&format!("{node}.key")),
    ]
}

/// A running `serve` with its stdout lines and stderr; killed when dropped.
struct Serve {
    child: Child,
    addr: String,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    fn start(args: &[String]) -> Serve {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
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
        let mut s = Serve { child, addr: String::new(), lines, seen: Vec::new(), stderr };
        let first = s.line("listening", |l| l.contains("listening on "));
        s.addr = first.split("listening on ").nth(1).unwrap().split(' ').next().unwrap().to_string();
        s
    }

    /// The next stdout line that satisfies `pred`.
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
                Err(e) => panic!(
                    "serve: waiting for {what}: {e:?}\nstdout:\n{}\nstderr:\n{}",
                    self.seen.join("\n"),
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0);
    }

    /// The health line (SIGUSR1).
    fn health(&mut self) -> String {
        self.signal(libc::SIGUSR1);
        self.line("health", |l| l.contains(" health: "))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A counter of the health line: `... NAME N, ...`.
fn counter(health: &str, name: &str) -> u64 {
    let at = health.find(&format!("{name} ")).unwrap_or_else(|| panic!("no `{name}` in {health}"));
    let n = &health[at + name.len() + 1..];
    n.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// `serve --tls MODE` with `node`'s certificate from `dir`.
fn serve_tls(mode: &str, dir: &TempDir, node: &str) -> Serve {
    let mut args = vec!["--tls".to_string(), mode.to_string()];
    args.extend(tls_files(dir, node));
    Serve::start(&args)
}

/// `CMD --tls MODE --tls-name NAME` with `client`'s files from `dir`, then `rest`.
fn client(cmd: &str, mode: &str, name: &str, dir: &TempDir, client: &str, rest: &[&str]) -> Output {
    let mut args = vec![cmd.to_string(), "--tls".into(), mode.into(), "--tls-name".into(), name.into()];
    args.extend(tls_files(dir, client));
    args.extend(rest.iter().map(|s| s.to_string()));
    Command::new(BIN).args(&args).output().unwrap()
}

fn ca_roots(dir: &TempDir) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.file("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(roots)
}

/// Checks `node`'s certificate in `dir` as rustls's server-side and client-side verifiers
/// do (what the engine uses): chained to the CA, for server name `as_name`.
fn verify(dir: &TempDir, node: &str, as_name: &str) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = CertificateDer::from_pem_file(dir.file(&format!("{node}.pem"))).unwrap();
    let now = UnixTime::now();
    let server =
        rustls::client::WebPkiServerVerifier::builder_with_provider(ca_roots(dir), provider.clone()).build().unwrap();
    let name = ServerName::try_from(as_name.to_string()).unwrap();
    server.verify_server_cert(&cert, &[], &name, &[], now)?;
    let client = rustls::server::WebPkiClientVerifier::builder_with_provider(ca_roots(dir), provider).build().unwrap();
    client.verify_client_cert(&cert, &[], now)?;
    Ok(())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn certs_writes_a_ca_and_node_certificates_and_reuses_the_ca() {
    let d = TempDir::new("certs");
    let out = certs(&d, &["db1", "cli"]);
    assert!(out.contains("new, valid 365 days"), "{out}");
    for f in ["ca.pem", "ca.key", "db1.pem", "db1.key", "cli.pem", "cli.key"] {
        let body = std::fs::read_to_string(d.0.join(f)).unwrap();
        let want = if f.ends_with(".pem") { "-----BEGIN CERTIFICATE-----" } else { "-----BEGIN PRIVATE KEY-----" };
        assert!(body.starts_with(want), "{f}: {body}");
        assert!(out.contains(&d.file(f)), "{f} not named in {out}");
        let m = mode(&d.0.join(f));
        if f.ends_with(".key") {
            assert_eq!(m, 0o600, "{f}");
        } else {
            assert_eq!(m & 0o077, 0o044, "{f}");
        }
    }
    // Chained to the CA, usable as server and client, named by its node name only.
    verify(&d, "db1", "db1").unwrap();
    verify(&d, "cli", "cli").unwrap();
    let e = verify(&d, "db1", "cli").unwrap_err();
    assert!(format!("{e}").contains("not valid for name"), "{e}");

    // A second run adds a node signed by the same CA, leaving the CA as it was.
    let ca = std::fs::read(d.0.join("ca.pem")).unwrap();
    let ca_key = std::fs::read(d.0.join("ca.key")).unwrap();
    let db1 = std::fs::read(d.0.join("db1.pem")).unwrap();
    let out = certs(&d, &["db2"]);
    assert!(out.contains("reused"), "{out}");
    assert_eq!(std::fs::read(d.0.join("ca.pem")).unwrap(), ca);
    assert_eq!(std::fs::read(d.0.join("ca.key")).unwrap(), ca_key);
    assert_eq!(std::fs::read(d.0.join("db1.pem")).unwrap(), db1);
    verify(&d, "db2", "db2").unwrap();
    verify(&d, "db1", "db1").unwrap();

    // --days sets the validity; a certificate of another CA does not verify against this one.
    let o = cli(&["certs", "--days", "2", &d.s(), "db3"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(text(&o.stdout).contains("valid 2 days"));
    let other = TempDir::new("other");
    certs(&other, &["db1"]);
    std::fs::copy(other.0.join("db1.pem"), d.0.join("stranger.pem")).unwrap();
    assert!(verify(&d, "stranger", "db1").is_err());
}

#[test]
fn certs_errors_are_one_line_with_their_exit_code() {
    let d = TempDir::new("certs-errors");
    let usage: &[&[&str]] = &[&["certs"], &["certs", "DIR"], &["certs", "DIR", "ca"], &["certs", "DIR", "a_b"]];
    for args in usage {
        let args: Vec<String> = args.iter().map(|a| a.replace("DIR", &d.s())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = cli(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert_eq!(text(&o.stderr).lines().count(), 1, "{o:?}");
        assert!(text(&o.stderr).starts_with("skynet-cluster certs: "), "{o:?}");
    }
    let o = cli(&["certs", "--days", "0", &d.s(), "x"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    // A CA certificate without its key (or the other way round) is not guessed at.
    certs(&d, &["x"]);
    std::fs::remove_file(d.0.join("ca.key")).unwrap();
    let o = cli(&["certs", &d.s(), "y"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(text(&o.stderr).contains("ca.key does not"), "{o:?}");
    assert!(!d.0.join("y.pem").exists());
    // A key that is not the CA's.
    let other = TempDir::new("other-key");
    certs(&other, &["z"]);
    std::fs::copy(other.0.join("ca.key"), d.0.join("ca.key")).unwrap();
    let o = cli(&["certs", &d.s(), "y"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(text(&o.stderr).contains("is not the key of"), "{o:?}");
    // A DIR that cannot be made.
    let o = cli(&["certs", "/proc/no/such/dir", "y"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(text(&o.stderr).lines().count(), 1, "{o:?}");
}

#[test]
fn tls_flags_without_their_files_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["serve", "--listen", "127.0.0.1:0", "--tls", "require"],
            "--tls require needs --tls-ca FILE, --tls-cert FILE",
        ),
        (
            &["serve", "--listen", "127.0.0.1:0", "--tls", "prefer", "--tls-ca", "a", "--tls-key", "k"],
            "--tls-cert FILE",
        ),
        (&["serve", "--listen", "127.0.0.1:0", "--tls", "maybe"], "--tls: `maybe` is not off, prefer or require"),
        (
            &["call", "--tls", "require", "--tls-ca", "a", "--tls-key", "k", "--tls-name", "n", "127.0.0.1:1", "@echo"],
            "--tls require needs --tls-cert FILE",
        ),
        (
            &["call", "--tls", "require", "--tls-ca", "a", "--tls-cert", "c", "--tls-key", "k", "127.0.0.1:1", "@echo"],
            "--tls-name NAME",
        ),
        (&["push", "--tls", "prefer", "127.0.0.1:1", "@sink"], "--tls prefer needs --tls-ca FILE"),
        (&["query", "--tls-name", "1.2.3.4", "127.0.0.1:1", "echo"], "--tls-name: `1.2.3.4` is not a DNS name"),
        (&["bench", "--tls", "require", "--tls-name", "x"], "--tls require needs --tls-ca FILE"),
        (&["bench", "--vs-plain"], "--vs-plain needs --tls prefer or require"),
    ];
    for (args, want) in cases {
        let o = cli(args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(&format!("skynet-cluster {}: ", args[0])), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    for cmd in ["serve", "call", "push", "query", "bench"] {
        let help = text(&cli(&[cmd, "--help"]).stdout);
        for f in ["--tls off|prefer|require", "--tls-ca FILE", "--tls-cert FILE", "--tls-key FILE"] {
            assert!(help.contains(f), "{cmd} --help lacks {f}");
        }
        assert_eq!(help.contains("--tls-name NAME"), cmd != "serve", "{cmd}");
    }
}

#[test]
fn serve_reloads_its_certificates_on_sighup() {
    let d = TempDir::new("sighup");
    certs(&d, &["srv"]);
    let mut s = serve_tls("require", &d, "srv");
    let l = s.line("tls line", |l| l.contains("serve: tls "));
    assert!(l.contains("tls require (CA ") && l.contains("srv.pem"), "{l}");
    s.signal(libc::SIGHUP);
    let l = s.line("reloaded", |l| l.contains("SIGHUP: "));
    assert!(l.contains("SIGHUP: tls certificates reloaded"), "{l}");
    // A key that is gone: the reload fails, says which file, and serve goes on.
    std::fs::rename(d.0.join("srv.key"), d.0.join("srv.key.away")).unwrap();
    s.signal(libc::SIGHUP);
    let l = s.line("not reloaded", |l| l.contains("SIGHUP: "));
    assert!(l.contains("not reloaded, the ones in use stay") && l.contains("srv.key"), "{l}");
    std::fs::rename(d.0.join("srv.key.away"), d.0.join("srv.key")).unwrap();
    // The health line has the TLS counters.
    let h = s.health();
    for c in ["tls links", "plain refused", "tls failures"] {
        counter(&h, c);
    }
    // TLS off: nothing to reload, said so.
    let mut plain = Serve::start(&[]);
    assert!(plain.line("tls line", |l| l.contains("serve: tls ")).ends_with("serve: tls off"));
    plain.signal(libc::SIGHUP);
    assert!(plain.line("sighup", |l| l.contains("SIGHUP: ")).contains("tls is off"));
}

#[test]
fn serve_with_unreadable_certificates_does_not_start() {
    let d = TempDir::new("unreadable");
    certs(&d, &["srv"]);
    let o = cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls",
        "require",
        "--tls-ca",
        &d.file("ca.pem"),
        "--tls-cert",
        &d.file("nope.pem"),
        "--tls-key",
        &d.file("srv.key"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(text(&o.stderr).contains("nope.pem"), "{o:?}");
}

/// Needs the engine's TLS core.
#[test]
fn tls_call_push_and_query_with_the_right_name() {
    let d = TempDir::new("right");
    certs(&d, &["srv", "cli"]);
    let mut s = serve_tls("require", &d, "srv");
    let addr = s.addr.clone();
    let o = client("call", "require", "srv", &d, "cli", &[&addr, "@echo", "42", r#""x""#]);
    assert_eq!((o.status.code(), text(&o.stdout)), (Some(0), "42\n\"x\"\n".into()), "{o:?}");
    let o = client("push", "require", "srv", &d, "cli", &[&addr, "@sink", "1"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = client("call", "prefer", "srv", &d, "cli", &[&addr, "@sink"]);
    assert_eq!((o.status.code(), text(&o.stdout)), (Some(0), "1\n".into()), "{o:?}");
    let o = client("query", "require", "srv", &d, "cli", &[&addr, "echo"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let h = s.health();
    assert!(counter(&h, "tls links") >= 4, "{h}");
    assert_eq!(counter(&h, "tls failures"), 0, "{h}");
}

/// Needs the engine's TLS core.
#[test]
fn tls_call_with_a_wrong_name_fails_with_the_reason() {
    let d = TempDir::new("wrong");
    certs(&d, &["srv", "other", "cli"]);
    let s = serve_tls("require", &d, "srv");
    // The server's certificate names srv, not other.
    let o = client("call", "require", "other", &d, "cli", &[&s.addr, "@echo", "1"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let err = text(&o.stderr).to_lowercase();
    assert!(err.contains("certificate") && err.contains("other"), "{err}");
    assert!(o.stdout.is_empty());
    // A client certificate from another CA: refused too.
    let stranger = TempDir::new("stranger");
    certs(&stranger, &["cli"]);
    let mut args: Vec<String> =
        ["call", "--tls", "require", "--tls-name", "srv"].iter().map(|s| s.to_string()).collect();
    args.extend(["--tls-ca".into(), d.file("ca.pem")]);
    args.extend(["--tls-cert".into(), stranger.file("cli.pem"), "--tls-key".into(), stranger.file("cli.key")]);
    args.extend([s.addr.clone(), "@echo".into(), "1".into()]);
    let o = Command::new(BIN).args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(!o.stderr.is_empty());
}

/// Needs the engine's TLS core.
#[test]
fn a_plain_client_against_serve_tls_require_fails() {
    let d = TempDir::new("plain-client");
    certs(&d, &["srv"]);
    let mut s = serve_tls("require", &d, "srv");
    // The node answers the call with its reason (a remote error, exit 1) and closes the link.
    let o = cli(&["call", &s.addr, "@echo", "1"]);
    assert!(matches!(o.status.code(), Some(1) | Some(3)), "{o:?}");
    assert!(text(&o.stderr).to_lowercase().contains("tls"), "{o:?}");
    assert!(o.stdout.is_empty());
    let o = cli(&["push", &s.addr, "@sink", "1"]);
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    let h = s.health();
    assert!(counter(&h, "plain refused") >= 1, "{h}");
    // In prefer, the same port serves it.
    let p = serve_tls("prefer", &d, "srv");
    let o = cli(&["call", &p.addr, "@echo", "1"]);
    assert_eq!((o.status.code(), text(&o.stdout)), (Some(0), "1\n".into()), "{o:?}");
}

/// Needs the engine's TLS core.
#[test]
fn a_tls_require_client_against_a_plain_node_fails_with_the_reason() {
    let d = TempDir::new("plain-node");
    certs(&d, &["srv", "cli"]);
    let s = Serve::start(&[]);
    for cmd in ["call", "query"] {
        let rest: &[&str] = if cmd == "call" { &[&s.addr, "@echo", "1"] } else { &[&s.addr, "echo"] };
        let o = client(cmd, "require", "srv", &d, "cli", rest);
        assert_eq!(o.status.code(), Some(3), "{cmd}: {o:?}");
        let err = text(&o.stderr);
        assert!(err.to_lowercase().contains("tls"), "{cmd}: the reason should say TLS: {err}");
        assert!(o.stdout.is_empty());
    }
    let o = client("push", "require", "srv", &d, "cli", &[&s.addr, "@sink", "1"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    // prefer: the stock-like plain node is served in plain text.
    let o = client("call", "prefer", "srv", &d, "cli", &[&s.addr, "@echo", "7"]);
    assert_eq!((o.status.code(), text(&o.stdout)), (Some(0), "7\n".into()), "{o:?}");
}

/// Needs the engine's TLS core. Not a speed test: only that the comparison runs and prints
/// its table (the figures are `make bench-tls`'s).
#[test]
fn bench_vs_plain_prints_the_comparison() {
    let d = TempDir::new("bench");
    certs(&d, &["srv", "cli"]);
    let s = serve_tls("prefer", &d, "srv");
    let mut args: Vec<String> = ["bench", "--connect", &s.addr, "--vs-plain", "--duration", "0.1", "--size", "tiny"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--conc".into(), "1,64".into(), "--tls".into(), "require".into(), "--tls-name".into(), "srv".into()]);
    args.extend(tls_files(&d, "cli"));
    let o = Command::new(BIN).args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = text(&o.stdout);
    assert!(out.contains("plain calls/s") && out.contains("TLS calls/s"), "{out}");
    assert!(out.contains("TLS p50 <= 1.2x plain: "), "{out}");
    assert!(out.contains("TLS calls/s >= 80% of plain: "), "{out}");
    // Against a plain node there is nothing to compare: said, not measured.
    let plain = Serve::start(&[]);
    args[2] = plain.addr.clone();
    let pos = args.iter().position(|a| a == "require").unwrap();
    args[pos] = "prefer".into();
    let o = Command::new(BIN).args(&args).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(text(&o.stderr).contains("is not TLS"), "{o:?}");
}
