//! TLS settings of a node: the mode and where its certificates are.

use std::path::PathBuf;

/// The reserved name a connecting native node sends its hello to (`@__skc.tls`). Stock
/// agents answer it `Invalid name`, as any unknown name.
pub const HELLO_NAME: &str = "__skc.tls";
/// What a native listener with TLS on answers the hello with (the payload of a success
/// response). Anything else means the peer does not speak TLS.
pub const HELLO_ANSWER: &[u8] = b"skc-tls/1";

/// How a node treats TLS on its links.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Stock behaviour: no hello is sent, a hello received is answered as an unknown name.
    #[default]
    Off,
    /// TLS with native peers, plain text with stock ones.
    Prefer,
    /// TLS only: a stock sender's connection is closed (logged, counted), and a call to a
    /// node that does not answer the hello fails with an error that says why.
    Require,
}

impl TlsMode {
    /// `off`, `prefer`, `require` (the CLI's and skynet config's spelling).
    pub fn parse(s: &str) -> Option<TlsMode> {
        match s {
            "off" => Some(TlsMode::Off),
            "prefer" => Some(TlsMode::Prefer),
            "require" => Some(TlsMode::Require),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Off => "off",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
        }
    }
}

/// A node's TLS settings ([`Config::tls`](super::super::Config::tls)). The files are read
/// when the node starts and again on [`Handle::reload_tls`](super::super::Handle::reload_tls).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// PEM: the cluster CA certificate(s) every peer's chain must lead to.
    pub ca: PathBuf,
    /// PEM: this node's certificate chain (leaf first). Its DNS subject alternative name is
    /// the node name peers know this node by.
    pub cert: PathBuf,
    /// PEM: this node's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}
