//! The TLS flags every subcommand that makes a node shares: `--tls off|prefer|require`,
//! `--tls-ca FILE`, `--tls-cert FILE`, `--tls-key FILE`, and for the connecting commands
//! `--tls-name NAME`, the node name the server's certificate must carry.
//!
//! The connecting side checks that the listener's certificate names (as a DNS subject
//! alternative name) the node it is configured as in its node map. The shell tool names
//! its one peer by `--tls-name` (`target` without it), so with TLS on `--tls-name` is
//! required: there is no good default (the host part of HOST:PORT is an address or a host
//! name, not the node name `skynet-cluster certs` writes into a certificate).

use skynet_cluster::engine::{TlsConfig, TlsMode};
use std::path::PathBuf;

/// The flags that take a value, for [`Args::parse`](super::args::Args::parse).
pub const SERVER_FLAGS: &[&str] = &["tls", "tls-ca", "tls-cert", "tls-key"];
pub const CLIENT_FLAGS: &[&str] = &["tls", "tls-ca", "tls-cert", "tls-key", "tls-name"];

/// The name a client gives its one peer in its node map when no `--tls-name` is given.
pub const DEFAULT_PEER: &str = "target";

/// The help text of the flags (clients: with `--tls-name`).
pub const SERVER_HELP: &str = "\
TLS (encrypted, mutually authenticated links between native nodes; certificates from
`skynet-cluster certs DIR NODE...`):
    --tls off|prefer|require  off (default): stock behaviour; prefer: TLS with native peers,
                            plain text with stock ones (and plain native clients), on the
                            same port; require: plain peers are refused
    --tls-ca FILE           the cluster CA (PEM) every peer's certificate must lead to
    --tls-cert FILE         this node's certificate (PEM); its name is the node's name
    --tls-key FILE          its private key (PEM)
                            SIGHUP reads the three files again (new links use them; links
                            already up keep theirs); the result is printed
";

pub const CLIENT_HELP: &str = "\
TLS (encrypted, mutually authenticated links; certificates from `skynet-cluster certs`):
    --tls off|prefer|require  off (default): plain, as stock; prefer: TLS when the node
                            speaks it, plain text with a stock node; require: fail (exit 3,
                            with the reason) unless the link is TLS
    --tls-ca FILE           the cluster CA (PEM) the node's certificate must lead to
    --tls-cert FILE         this client's certificate (PEM; the node checks it too)
    --tls-key FILE          its private key (PEM)
    --tls-name NAME         the node name the node's certificate must carry (its NODE in
                            `skynet-cluster certs DIR NODE`); required with prefer/require
";

/// A subcommand's TLS settings: the engine's, and the name the peer goes by.
pub struct Tls {
    pub cfg: TlsConfig,
    /// The node map's name for the peer (clients): `--tls-name`, else [`DEFAULT_PEER`].
    pub peer: String,
}

impl Tls {
    pub fn on(&self) -> bool {
        self.cfg.mode != TlsMode::Off
    }
}

/// Reads the flags through `get` (the flag's value, if given). `client`: `--tls-name` is
/// allowed and, with TLS on, required. Every error names the flag and is a usage error.
pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>, client: bool) -> Result<Tls, String> {
    let mode = match get("tls") {
        None => TlsMode::Off,
        Some(m) => TlsMode::parse(m).ok_or_else(|| format!("--tls: `{m}` is not off, prefer or require"))?,
    };
    let file = |f: &str| get(f).filter(|v| !v.is_empty()).map(PathBuf::from);
    let (ca, cert, key) = (file("tls-ca"), file("tls-cert"), file("tls-key"));
    let name = get("tls-name");
    if let Some(n) = name {
        check_name(n).map_err(|e| format!("--tls-name: {e}"))?;
    }
    if mode != TlsMode::Off {
        let mut missing = Vec::new();
        for (have, what) in [
            (ca.is_some(), "--tls-ca FILE"),
            (cert.is_some(), "--tls-cert FILE"),
            (key.is_some(), "--tls-key FILE"),
            (!client || name.is_some(), "--tls-name NAME"),
        ] {
            if !have {
                missing.push(what);
            }
        }
        if !missing.is_empty() {
            return Err(format!("--tls {} needs {}", mode.as_str(), missing.join(", ")));
        }
    }
    Ok(Tls {
        cfg: TlsConfig {
            mode,
            ca: ca.unwrap_or_default(),
            cert: cert.unwrap_or_default(),
            key: key.unwrap_or_default(),
        },
        peer: name.unwrap_or(DEFAULT_PEER).to_string(),
    })
}

/// A node name that can be a certificate's DNS name: 1..253 bytes of letters, digits, `-`
/// and `.`, labels of 1..63 bytes that do not begin or end with `-`, not all digits and
/// dots (an address). `certs` uses it for file names too, so `ca` is refused there.
pub fn check_name(n: &str) -> Result<(), String> {
    let bad = || format!("`{n}` is not a DNS name (letters, digits, `-` and `.`, e.g. db1 or db.example)");
    if n.is_empty() || n.len() > 253 || n.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    for label in n.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// What the settings say, for serve's start lines: `tls off`, or the mode and files.
pub fn describe(t: &TlsConfig) -> String {
    match t.mode {
        TlsMode::Off => "tls off".into(),
        m => format!(
            "tls {} (CA {}, certificate {}, key {}; SIGHUP reloads them)",
            m.as_str(),
            t.ca.display(),
            t.cert.display(),
            t.key.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[(&str, &str)], client: bool) -> Result<Tls, String> {
        parse(|f| args.iter().find(|(k, _)| *k == f).map(|(_, v)| *v), client)
    }

    #[test]
    fn flags() {
        let t = p(&[], true).unwrap();
        assert!(!t.on());
        assert_eq!(t.peer, "target");
        let full = [("tls", "require"), ("tls-ca", "ca.pem"), ("tls-cert", "c.pem"), ("tls-key", "c.key")];
        assert!(p(&full, false).unwrap().on());
        assert_eq!(p(&full, true).err().unwrap(), "--tls require needs --tls-name NAME");
        let mut named = full.to_vec();
        named.push(("tls-name", "db1"));
        assert_eq!(p(&named, true).unwrap().peer, "db1");
        assert_eq!(
            p(&[("tls", "prefer"), ("tls-ca", "ca.pem")], false).err().unwrap(),
            "--tls prefer needs --tls-cert FILE, --tls-key FILE"
        );
        assert_eq!(p(&[("tls", "yes")], false).err().unwrap(), "--tls: `yes` is not off, prefer or require");
        assert!(p(&[("tls", "off"), ("tls-name", "db1")], true).unwrap().peer == "db1");
    }

    #[test]
    fn names() {
        for ok in ["db1", "db.example", "a-b", "node-7.cluster.local", "x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "127.0.0.1", "a_b", "-a", "a-", "a..b", "a/b", "db 1", ".a", "1"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
