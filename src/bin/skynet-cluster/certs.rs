//! `skynet-cluster certs DIR NODE...`: a cluster CA and node certificates for trying TLS out
//! (rcgen, ECDSA P-256). A CA already in DIR signs the new node certificates, so nodes can be
//! added later.

use super::args::{usage_error, Args};
use super::tlsflags::check_name;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const HELP: &str = "\
skynet-cluster certs: make a cluster CA and node certificates, to try TLS out.

USAGE:
    skynet-cluster certs [--days N] DIR NODE [NODE...]

Writes DIR/ca.pem and DIR/ca.key (the cluster CA) and, for each NODE, DIR/NODE.pem and
DIR/NODE.key: an ECDSA P-256 key and a certificate for NODE (subject CN and DNS name NODE,
usable by a server and a client), signed by the CA. DIR is created if missing. A CA already
in DIR (both files) is reused, so nodes can be added later; a node's files are replaced.
Key files are written with mode 0600. NODE is the node's name in the cluster's node map
(a DNS name: letters, digits, `-`, `.`), what `--tls-name` gives to a client.

Then, for example:
    skynet-cluster serve --listen 127.0.0.1:2528 --tls require \\
        --tls-ca DIR/ca.pem --tls-cert DIR/db1.pem --tls-key DIR/db1.key
    skynet-cluster call --tls require --tls-name db1 --tls-ca DIR/ca.pem \\
        --tls-cert DIR/cli.pem --tls-key DIR/cli.key 127.0.0.1:2528 @echo 42

FLAGS:
    --days N    validity in days, from an hour ago (default 365; a new CA gets the same)
    --help      this text

EXIT: 0 written, 1 I/O error or an unusable CA in DIR, 2 usage.
";

const DEFAULT_DAYS: usize = 365;
const CA_CN: &str = "skynet-cluster CA";

enum Fail {
    Usage(String),
    Io(String),
}

pub fn main(argv: Vec<String>) -> i32 {
    let a = match Args::parse_with_operands(argv, &["days"], &[]) {
        Ok(a) => a,
        Err(e) => return usage_error("certs", &e),
    };
    if a.flag("help") {
        print!("{HELP}");
        return 0;
    }
    match run(&a) {
        Ok(()) => 0,
        Err(Fail::Usage(e)) => usage_error("certs", &e),
        Err(Fail::Io(e)) => {
            eprintln!("skynet-cluster certs: {e}");
            1
        }
    }
}

fn run(a: &Args) -> Result<(), Fail> {
    let days = a.count("days").map_err(Fail::Usage)?.unwrap_or(DEFAULT_DAYS);
    if days > 100 * 366 {
        return Err(Fail::Usage(format!("--days: {days} is more than 100 years")));
    }
    let Some((dir, nodes)) = a.operands.split_first() else {
        return Err(Fail::Usage("missing DIR and NODE".into()));
    };
    if nodes.is_empty() {
        return Err(Fail::Usage("missing NODE (at least one node name)".into()));
    }
    for (i, n) in nodes.iter().enumerate() {
        check_name(n).map_err(|e| Fail::Usage(format!("node name {e}")))?;
        if n == "ca" {
            return Err(Fail::Usage("node name `ca`: DIR/ca.pem is the CA's".into()));
        }
        if nodes[..i].contains(n) {
            return Err(Fail::Usage(format!("node name `{n}` given twice")));
        }
    }
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).map_err(|e| Fail::Io(format!("cannot create {}: {e}", dir.display())))?;
    let validity = Validity::days(days);
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let ca = match (ca_pem.exists(), ca_key.exists()) {
        (true, true) => {
            let ca = load_ca(&ca_pem, &ca_key).map_err(Fail::Io)?;
            println!("CA   {} (key {}): reused", ca_pem.display(), ca_key.display());
            ca
        }
        (false, false) => {
            let ca = new_ca(&validity).map_err(Fail::Io)?;
            write_file(&ca_key, ca.key.serialize_pem().as_bytes(), true).map_err(Fail::Io)?;
            write_file(&ca_pem, ca.cert.pem().as_bytes(), false).map_err(Fail::Io)?;
            println!("CA   {} (key {}): new, valid {days} days", ca_pem.display(), ca_key.display());
            ca
        }
        (pem, _) => {
            let (has, lacks) = if pem { (&ca_pem, &ca_key) } else { (&ca_key, &ca_pem) };
            return Err(Fail::Io(format!(
                "{} exists but {} does not: give a DIR with both (to add nodes to that CA) or neither",
                has.display(),
                lacks.display()
            )));
        }
    };
    for n in nodes {
        let (pem, key) = (dir.join(format!("{n}.pem")), dir.join(format!("{n}.key")));
        let replaced = pem.exists() || key.exists();
        let (cert_pem, key_pem) = node_cert(n, &ca, &validity).map_err(Fail::Io)?;
        write_file(&key, key_pem.as_bytes(), true).map_err(Fail::Io)?;
        write_file(&pem, cert_pem.as_bytes(), false).map_err(Fail::Io)?;
        println!(
            "node {n}: {} (key {}), signed by the CA, valid {days} days{}",
            pem.display(),
            key.display(),
            if replaced { " (replaced the old files)" } else { "" }
        );
    }
    Ok(())
}

/// Not before an hour ago (clocks of a cluster differ a little), not after `days` from now.
struct Validity {
    from: SystemTime,
    to: SystemTime,
}

impl Validity {
    fn days(days: usize) -> Validity {
        let now = SystemTime::now();
        Validity { from: now - Duration::from_secs(3600), to: now + Duration::from_secs(days as u64 * 86400) }
    }

    fn apply(&self, p: &mut CertificateParams) {
        // rcgen's times are `time::OffsetDateTime`, reached from its epoch helper.
        let since_epoch = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        p.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(self.from);
        p.not_after = rcgen::date_time_ymd(1970, 1, 1) + since_epoch(self.to);
    }
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca_params(dn: DistinguishedName) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

fn new_ca(v: &Validity) -> Result<Ca, String> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("cannot make a key: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_CN);
    let mut p = ca_params(dn);
    v.apply(&mut p);
    let cert = p.self_signed(&key).map_err(|e| format!("cannot make the CA certificate: {e}"))?;
    Ok(Ca { cert, key })
}

/// The CA in DIR, as an issuer for new certificates: its key, and a certificate rebuilt
/// with the same subject name (what node certificates name as their issuer) and key.
/// Refused when ca.pem's subject cannot be rebuilt exactly or its key is not ca.key's.
fn load_ca(pem: &Path, key: &Path) -> Result<Ca, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let key_pair = KeyPair::from_pem(&read(key)?)
        .map_err(|e| format!("{}: not a private key rcgen can use (PKCS#8 PEM): {e}", key.display()))?;
    let der = pem_der(&read(pem)?).ok_or_else(|| format!("{}: no CERTIFICATE in it", pem.display()))?;
    let bad = |why: &str| format!("{}: {why}", pem.display());
    let was = der::parts(&der).ok_or_else(|| bad("not an X.509 certificate"))?;
    let dn = der::names(was.subject).ok_or_else(|| bad("its subject name is not one rcgen can rebuild"))?;
    let mut params = ca_params(dn);
    // Node certificates name the CA's key by its identifier (checked by OpenSSL, say).
    if let Some(ski) = was.ski {
        params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(ski.to_vec());
    }
    let cert = params.self_signed(&key_pair).map_err(|e| format!("{}: {e}", key.display()))?;
    let now = der::parts(cert.der()).ok_or_else(|| bad("cannot rebuild its subject"))?;
    if now.spki != was.spki {
        return Err(format!("{} is not the key of {}", key.display(), pem.display()));
    }
    if now.subject != was.subject {
        return Err(bad("its subject name is not one rcgen can rebuild exactly (made by another tool?)"));
    }
    Ok(Ca { cert, key: key_pair })
}

/// A node's certificate and key, in PEM.
fn node_cert(name: &str, ca: &Ca, v: &Validity) -> Result<(String, String), String> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| format!("cannot make a key: {e}"))?;
    let mut p = CertificateParams::new(vec![name.to_string()]).map_err(|e| format!("node {name}: {e}"))?;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    p.use_authority_key_identifier_extension = true;
    v.apply(&mut p);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).map_err(|e| format!("node {name}: cannot sign: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
fn pem_der(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + text[start..].find("-----END CERTIFICATE-----")?;
    let b64: Vec<u8> = text[start..end].bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    base64_decode(&b64)
}

fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.strip_suffix(b"==").or_else(|| s.strip_suffix(b"=")).unwrap_or(s);
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

/// Writes `data` to `path` through a temporary file renamed over it; `secret`: mode 0600.
fn write_file(path: &Path, data: &[u8], secret: bool) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let r = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Just enough DER to read a certificate's subject name and public key.
mod der {
    use rcgen::{DistinguishedName, DnType, DnValue};

    /// A TLV: its tag, its content, the whole TLV, and what follows it.
    type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

    /// The TLV at the start of `b`.
    fn tlv(b: &[u8]) -> Option<Tlv<'_>> {
        let (&tag, rest) = b.split_first()?;
        let (&l0, rest) = rest.split_first()?;
        let (len, rest) = if l0 < 0x80 {
            (l0 as usize, rest)
        } else {
            let n = (l0 & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            (rest[..n].iter().fold(0usize, |a, &x| a << 8 | x as usize), &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let head = b.len() - rest.len();
        Some((tag, &rest[..len], &b[..head + len], &rest[len..]))
    }

    /// What an issuer is rebuilt from: the subject Name and the SubjectPublicKeyInfo of a
    /// certificate (whole TLVs), and its subject key identifier if it has one.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Parts<'a> {
        pub subject: &'a [u8],
        pub spki: &'a [u8],
        pub ski: Option<&'a [u8]>,
    }

    pub fn parts(cert: &[u8]) -> Option<Parts<'_>> {
        let (0x30, cert, _, _) = tlv(cert)? else { return None };
        let (0x30, tbs, _, _) = tlv(cert)? else { return None };
        let mut rest = tbs;
        let (tag, _, _, r) = tlv(rest)?;
        if tag == 0xa0 {
            rest = r; // version
        }
        let (_, _, _, rest) = tlv(rest)?; // serial
        let (_, _, _, rest) = tlv(rest)?; // signature algorithm
        let (_, _, _, rest) = tlv(rest)?; // issuer
        let (_, _, _, rest) = tlv(rest)?; // validity
        let (0x30, _, subject, rest) = tlv(rest)? else { return None };
        let (0x30, _, spki, mut rest) = tlv(rest)? else { return None };
        let mut ski = None;
        while !rest.is_empty() {
            let (tag, content, _, r) = tlv(rest)?;
            rest = r;
            if tag == 0xa3 {
                ski = subject_key_id(content)?;
            }
        }
        Some(Parts { subject, spki, ski })
    }

    /// The subjectKeyIdentifier (2.5.29.14) among a certificate's extensions ([3]'s content).
    fn subject_key_id(exts: &[u8]) -> Option<Option<&[u8]>> {
        let (0x30, mut exts, _, _) = tlv(exts)? else { return None };
        while !exts.is_empty() {
            let (0x30, ext, _, rest) = tlv(exts)? else { return None };
            exts = rest;
            let (0x06, id, _, mut rest) = tlv(ext)? else { return None };
            if id != [0x55, 0x1d, 0x0e] {
                continue;
            }
            if let (0x01, _, _, r) = tlv(rest)? {
                rest = r; // critical
            }
            let (0x04, value, _, _) = tlv(rest)? else { return None };
            let (0x04, key_id, _, _) = tlv(value)? else { return None };
            return Some(Some(key_id));
        }
        Some(None)
    }

    fn oid(b: &[u8]) -> Option<Vec<u64>> {
        let (&first, rest) = b.split_first()?;
        let mut out = vec![(first / 40) as u64, (first % 40) as u64];
        let mut n = 0u64;
        for &x in rest {
            n = n.checked_mul(128)? | (x & 0x7f) as u64;
            if x & 0x80 == 0 {
                out.push(n);
                n = 0;
            }
        }
        Some(out)
    }

    /// A Name as rcgen's DistinguishedName: one attribute per RDN, string types rcgen
    /// writes the same way back (the caller checks the round trip).
    pub fn names(name: &[u8]) -> Option<DistinguishedName> {
        let (0x30, mut rdns, _, _) = tlv(name)? else { return None };
        let mut dn = DistinguishedName::new();
        while !rdns.is_empty() {
            let (0x31, set, _, rest) = tlv(rdns)? else { return None };
            rdns = rest;
            let (0x30, atv, _, _) = tlv(set)? else { return None };
            let (0x06, ty, _, rest) = tlv(atv)? else { return None };
            let (tag, value, _, _) = tlv(rest)?;
            let text = std::str::from_utf8(value).ok()?.to_string();
            let value = match tag {
                0x0c => DnValue::Utf8String(text),
                0x13 => DnValue::PrintableString(text.try_into().ok()?),
                0x16 => DnValue::Ia5String(text.try_into().ok()?),
                _ => return None,
            };
            dn.push(DnType::from_oid(&oid(ty)?), value);
        }
        Some(dn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode(b"aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(base64_decode(b"aGVsbG8h"), Some(b"hello!".to_vec()));
        assert_eq!(base64_decode(b"aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64_decode(b"a*=="), None);
    }

    #[test]
    fn a_ca_is_rebuilt_from_its_files() {
        let v = Validity::days(1);
        let ca = new_ca(&v).unwrap();
        let der = pem_der(&ca.cert.pem()).unwrap();
        assert_eq!(der, ca.cert.der().to_vec());
        let was = der::parts(&der).unwrap();
        assert_eq!(was.ski.map(<[u8]>::len), Some(20));
        let mut params = ca_params(der::names(was.subject).unwrap());
        params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(was.ski.unwrap().to_vec());
        let again = params.self_signed(&ca.key).unwrap();
        assert_eq!(der::parts(again.der()).unwrap(), was);
    }
}
