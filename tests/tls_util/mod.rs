//! Certificates for the TLS tests, made with rcgen in a temporary directory: a cluster CA,
//! node certificates naming a node (DNS SAN), one from another CA, an expired one.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use skynet_cluster::engine::{TlsConfig, TlsMode};
use std::path::{Path, PathBuf};

/// A CA that signs node certificates into `dir`.
pub struct Ca {
    pub dir: PathBuf,
    pub name: String,
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    /// A new CA in `dir` (created), written as `dir/<name>.pem`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        std::fs::create_dir_all(dir).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, format!("test CA {name}"));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Ca { dir: dir.to_path_buf(), name: name.to_string(), cert, key }
    }

    pub fn pem(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// A node certificate naming `node`, written as `dir/<file>.pem` and `.key`.
    pub fn node(&self, file: &str, node: &str) -> (PathBuf, PathBuf) {
        self.node_with(file, node, |_| {})
    }

    /// An expired node certificate (valid 2020-01-01 .. 2021-01-01).
    pub fn expired(&self, file: &str, node: &str) -> (PathBuf, PathBuf) {
        self.node_with(file, node, |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        })
    }

    fn node_with(&self, file: &str, node: &str, f: impl FnOnce(&mut CertificateParams)) -> (PathBuf, PathBuf) {
        let mut p = CertificateParams::new(vec![node.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, node);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        f(&mut p);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (self.dir.join(format!("{file}.pem")), self.dir.join(format!("{file}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// A TLS config trusting this CA, presenting the certificate and key `files` (made by
    /// this CA or another).
    pub fn trusting(&self, mode: TlsMode, files: (PathBuf, PathBuf)) -> TlsConfig {
        TlsConfig { mode, ca: self.pem(), cert: files.0, key: files.1 }
    }

    /// A TLS config trusting this CA, with the certificate of `node` (made as `<node>.pem`).
    pub fn config(&self, mode: TlsMode, node: &str) -> TlsConfig {
        let (cert, key) = self.node(node, node);
        TlsConfig { mode, ca: self.pem(), cert, key }
    }
}

/// A fresh temporary directory for one test, removed when dropped (derefs to its path).
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh temporary directory for one test (`tag` unique within the test binary).
pub fn tempdir(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("skc-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}
