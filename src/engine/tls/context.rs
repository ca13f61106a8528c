//! The rustls configurations of a node, built from its PEM files (and rebuilt on reload).

use super::TlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use std::sync::Arc;

/// Encrypted bytes one link may hold in rustls before a write must wait for the socket
/// (rustls's default is 64 KiB: four times the syscalls for a 1 MiB message).
const BUFFER_LIMIT: usize = 256 << 10;

/// Both sides' rustls configurations, shared by every link made while they are current.
pub(crate) struct TlsContext {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
}

impl TlsContext {
    /// Reads the CA, the node's certificate chain and key. The error names the file and
    /// what is wrong with it.
    pub(crate) fn load(cfg: &TlsConfig) -> Result<TlsContext, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca = cfg.ca.display();
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(&cfg.ca)
            .map_err(|e| format!("tls: CA file {ca}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("tls: CA file {ca}: {e}"))?;
        for c in cas {
            roots.add(c).map_err(|e| format!("tls: CA file {ca}: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("tls: CA file {ca} holds no certificate"));
        }
        let cert = cfg.cert.display();
        let chain = CertificateDer::pem_file_iter(&cfg.cert)
            .map_err(|e| format!("tls: certificate file {cert}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("tls: certificate file {cert}: {e}"))?;
        if chain.is_empty() {
            return Err(format!("tls: certificate file {cert} holds no certificate"));
        }
        let key =
            PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| format!("tls: key file {}: {e}", cfg.key.display()))?;
        let roots = Arc::new(roots);
        let versions = &[&rustls::version::TLS13];
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| format!("tls: {e}"))?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| format!("tls: certificate {cert} and its key: {e}"))?;
        // A link lives long and is made once: no session tickets to keep or resume.
        client.resumption = rustls::client::Resumption::disabled();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("tls: CA file {ca}: {e}"))?;
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| format!("tls: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| format!("tls: certificate {cert} and its key: {e}"))?;
        server.send_tls13_tickets = 0;
        Ok(TlsContext { client: Arc::new(client), server: Arc::new(server) })
    }

    /// The connecting side of a link to `node`: its certificate must name `node`.
    pub(crate) fn client(&self, node: &str) -> Result<rustls::Connection, String> {
        let name = ServerName::try_from(node.to_string())
            .map_err(|_| format!("tls: node name {node:?} cannot be a certificate name (DNS name)"))?;
        let mut c = ClientConnection::new(self.client.clone(), name).map_err(|e| format!("tls: {e}"))?;
        c.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(c.into())
    }

    /// The accepting side of a link.
    pub(crate) fn server(&self) -> Result<rustls::Connection, String> {
        let mut c = ServerConnection::new(self.server.clone()).map_err(|e| format!("tls: {e}"))?;
        c.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(c.into())
    }
}
