//! Encrypted, mutually authenticated links between native nodes (issue 14), negotiated so
//! that stock peers keep working.
//!
//! # Negotiation (the "hello")
//!
//! A connecting native node whose mode is not `off` sends, before anything else, a request
//! to the reserved name `@__skc.tls` (see [`HELLO_NAME`]). What comes back decides the link:
//! * a native listener with TLS on answers it with [`HELLO_ANSWER`]; both sides then switch
//!   the same socket to TLS (the connecting side is the TLS client), and the calls queued
//!   meanwhile leave encrypted;
//! * a stock agent (or a native one with TLS off) answers an unknown `@name` with an error
//!   (`Invalid name`): in `prefer` the link goes on in plain text; in `require` it closes
//!   and its calls fail with [`CallError::LinkDown`](super::CallError::LinkDown) saying why.
//!
//! A native listener that sees any other first frame is talking to a stock sender (or a
//! native one with TLS off): served in plain text unless the mode is `require`, where the
//! connection is closed with a logged reason. Nothing is written before the hello is
//! answered, so no request leaves in plain text towards a node that speaks TLS.
//!
//! # Who is who
//!
//! Certificates are PEM: a cluster CA, and per node a certificate chain and its key. Both
//! sides present theirs and check the other's chain against the CA. The connecting side
//! also checks that the listener's certificate names (as a DNS subject alternative name)
//! the node it is configured as in the node map, so one node cannot pose as another;
//! the listening side learns the caller's node name from its certificate.

mod mode;
pub use mode::{TlsConfig, TlsMode, HELLO_ANSWER, HELLO_NAME};

pub(crate) mod hello;

#[cfg(feature = "tls")]
mod context;
#[cfg(feature = "tls")]
mod link;
#[cfg(feature = "tls")]
pub(crate) use context::TlsContext;
#[cfg(feature = "tls")]
pub(crate) use link::{TlsError, TlsLink};
/// One link's TLS session, as the contexts make it.
#[cfg(feature = "tls")]
pub(crate) type Session = rustls::Connection;
#[cfg(not(feature = "tls"))]
pub(crate) type Session = std::convert::Infallible;

/// Without the `tls` feature there are no contexts (a node with a TLS mode does not start).
#[cfg(not(feature = "tls"))]
pub(crate) enum TlsContext {}

#[cfg(not(feature = "tls"))]
impl TlsContext {
    pub(crate) fn client(&self, _: &str) -> Result<Session, String> {
        match *self {}
    }
    pub(crate) fn server(&self) -> Result<Session, String> {
        match *self {}
    }
}

/// Without the `tls` feature no link is ever TLS: the type exists so that the engine's
/// code paths compile the same way, and has no values.
#[cfg(not(feature = "tls"))]
pub(crate) enum TlsLink {}

#[cfg(not(feature = "tls"))]
impl TlsLink {
    pub(crate) fn new(s: Session) -> TlsLink {
        match s {}
    }
    pub(crate) fn wants_write(&self) -> bool {
        match *self {}
    }
    pub(crate) fn write_records(&mut self, _: &mio::net::TcpStream) -> std::io::Result<bool> {
        match *self {}
    }
    pub(crate) fn write_plain(&mut self, _: &mio::net::TcpStream, _: &[&[u8]]) -> std::io::Result<(usize, bool)> {
        match *self {}
    }
}

/// A node's TLS: its mode and, when on, the configurations links are made with (replaced
/// whole by a reload; links already up keep the one they were made with).
pub(crate) struct Tls {
    pub(crate) mode: TlsMode,
    cfg: TlsConfig,
    #[cfg(feature = "tls")]
    ctx: parking_lot::RwLock<Option<std::sync::Arc<TlsContext>>>,
}

impl Tls {
    /// Reads the certificates when the mode is not `off`.
    pub(crate) fn new(cfg: &TlsConfig) -> Result<Tls, String> {
        let tls = Tls {
            mode: cfg.mode,
            cfg: cfg.clone(),
            #[cfg(feature = "tls")]
            ctx: parking_lot::RwLock::new(None),
        };
        tls.reload()?;
        Ok(tls)
    }

    /// Reads the certificate files again; new links use them. On error the ones in use
    /// stay.
    pub(crate) fn reload(&self) -> Result<(), String> {
        if self.mode == TlsMode::Off {
            return Ok(());
        }
        #[cfg(feature = "tls")]
        {
            let ctx = TlsContext::load(&self.cfg)?;
            *self.ctx.write() = Some(std::sync::Arc::new(ctx));
            Ok(())
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = &self.cfg;
            Err("tls: this build has no TLS (the skynet-cluster crate's `tls` feature is off)".into())
        }
    }

    #[cfg(feature = "tls")]
    pub(crate) fn context(&self) -> Option<std::sync::Arc<TlsContext>> {
        self.ctx.read().clone()
    }

    #[cfg(not(feature = "tls"))]
    pub(crate) fn context(&self) -> Option<std::sync::Arc<TlsContext>> {
        None
    }
}
