//! The `cluster_*` keys of the skynet config file: the engine's limits and timers for the
//! node (see the table in the module doc of `mod.rs`), who may connect and what they may
//! call (admission and exposure), and TLS. Read once, when the service starts
//! (`skcluster_init`); a value that does not parse stops the service from starting.

use crate::engine::{Config, Exposure, Heartbeat, IpNet, TlsMode};
use std::path::PathBuf;
use std::time::Duration;

/// What a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A whole number, at least 1.
    Count,
    /// A whole number; `0` or `false`: no bound.
    CountOrOff,
    /// Bytes, at least 1: a whole number, or one with a `K`, `M` or `G` suffix (x 1024^n).
    Bytes,
    /// Seconds (fractions allowed); `0` or `false` turns the timer off.
    Seconds,
    /// CIDR blocks or addresses, IPv4 or IPv6, separated by commas.
    Blocks,
    /// `registered`, or registered names separated by commas.
    Expose,
    /// `off`, `prefer` or `require`.
    Tls,
    /// A file name.
    File,
}

/// One config key and the engine setting it drives.
struct Key {
    name: &'static str,
    kind: Kind,
    apply: fn(&mut Config, Value),
}

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Num(usize),
    /// `None`: off.
    Secs(Option<Duration>),
    /// `None`: no bound.
    Bound(Option<usize>),
    Blocks(Vec<IpNet>),
    Expose(Exposure),
    Tls(TlsMode),
    File(PathBuf),
}

impl Value {
    fn num(self) -> usize {
        match self {
            Value::Num(n) => n,
            _ => unreachable!("a Count or Bytes key"),
        }
    }

    fn secs(self) -> Option<Duration> {
        match self {
            Value::Secs(d) => d,
            _ => unreachable!("a Seconds key"),
        }
    }

    fn file(self) -> PathBuf {
        match self {
            Value::File(f) => f,
            _ => unreachable!("a File key"),
        }
    }
}

/// Every key, in the order they are documented and reported.
const KEYS: &[Key] = &[
    Key { name: "cluster_max_links", kind: Kind::Count, apply: |c, v| c.max_links = v.num() },
    Key { name: "cluster_max_reassembly", kind: Kind::Bytes, apply: |c, v| c.max_reassembly_total = v.num() },
    Key { name: "cluster_max_send", kind: Kind::Bytes, apply: |c, v| c.max_send_total = v.num() },
    Key { name: "cluster_max_send_queue", kind: Kind::Bytes, apply: |c, v| c.max_send_queue = v.num() },
    Key { name: "cluster_max_message", kind: Kind::Bytes, apply: |c, v| c.max_message = v.num() },
    Key { name: "cluster_max_inflight", kind: Kind::Count, apply: |c, v| c.max_inflight = v.num() },
    Key { name: "cluster_multi_timeout", kind: Kind::Seconds, apply: |c, v| c.multi_timeout = v.secs() },
    Key { name: "cluster_idle_timeout", kind: Kind::Seconds, apply: |c, v| c.idle_timeout = v.secs() },
    Key { name: "cluster_heartbeat", kind: Kind::Seconds, apply: |c, v| c.heartbeat = v.secs().map(Heartbeat::every) },
    Key {
        name: "cluster_allow",
        kind: Kind::Blocks,
        apply: |c, v| {
            if let Value::Blocks(b) = v {
                c.allow = Some(b)
            }
        },
    },
    Key {
        name: "cluster_max_links_per_source",
        kind: Kind::CountOrOff,
        apply: |c, v| {
            if let Value::Bound(b) = v {
                c.max_links_per_source = b
            }
        },
    },
    Key {
        name: "cluster_expose",
        kind: Kind::Expose,
        apply: |c, v| {
            if let Value::Expose(e) = v {
                c.exposure = e
            }
        },
    },
    Key {
        name: "cluster_tls",
        kind: Kind::Tls,
        apply: |c, v| {
            if let Value::Tls(m) = v {
                c.tls.mode = m
            }
        },
    },
    Key { name: "cluster_tls_ca", kind: Kind::File, apply: |c, v| c.tls.ca = v.file() },
    Key { name: "cluster_tls_cert", kind: Kind::File, apply: |c, v| c.tls.cert = v.file() },
    Key { name: "cluster_tls_key", kind: Kind::File, apply: |c, v| c.tls.key = v.file() },
];

/// The longest timer accepted (a year): beyond it a typo is likelier than an intent.
const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// What the keys set: the config to start the engine with, one line naming the values
/// that were given (`None` when no key was set), and warnings about values that are valid
/// but do not do what they seem to.
#[derive(Debug)]
pub(super) struct Settings {
    pub cfg: Config,
    pub given: Option<String>,
    pub warnings: Vec<String>,
}

/// Reads every key through `getenv` (skynet's config) on top of `base`. `Err`: one line
/// per bad value, each naming the key, the value and what it must be.
pub(super) fn read(base: Config, getenv: impl Fn(&str) -> Option<String>) -> Result<Settings, Vec<String>> {
    let mut cfg = base;
    let mut given = Vec::new();
    let mut errors = Vec::new();
    for k in KEYS {
        let Some(raw) = getenv(k.name) else { continue };
        match parse(k.kind, raw.trim()) {
            Ok(v) => {
                given.push(format!("{} = {}", k.name, show(&v)));
                (k.apply)(&mut cfg, v);
            }
            Err(what) => errors.push(format!("skcluster: bad config {} = {raw:?}: {what}", k.name)),
        }
    }
    let files =
        [("cluster_tls_ca", &cfg.tls.ca), ("cluster_tls_cert", &cfg.tls.cert), ("cluster_tls_key", &cfg.tls.key)];
    let files_missing: Vec<&str> = files.iter().filter(|(_, f)| f.as_os_str().is_empty()).map(|(k, _)| *k).collect();
    let mut warnings = Vec::new();
    if cfg.tls.mode != TlsMode::Off && !files_missing.is_empty() {
        errors.push(format!(
            "skcluster: bad config cluster_tls = {}: needs cluster_tls_ca, cluster_tls_cert and cluster_tls_key (missing: {})",
            cfg.tls.mode.as_str(),
            files_missing.join(", ")
        ));
    } else if cfg.tls.mode == TlsMode::Off && files_missing.len() < files.len() {
        warnings.push("skcluster: cluster_tls_* files are given but cluster_tls is off: they are not used".to_string());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if cfg.max_send_queue > cfg.max_send_total {
        warnings.push(format!(
            "skcluster: cluster_max_send_queue ({}) is above cluster_max_send ({}): one link holds at most the node's total",
            bytes(cfg.max_send_queue),
            bytes(cfg.max_send_total)
        ));
    }
    if cfg.max_message > cfg.max_reassembly_total {
        warnings.push(format!(
            "skcluster: cluster_max_message ({}) is above cluster_max_reassembly ({}): no multi-part message larger than the node's total is accepted",
            bytes(cfg.max_message),
            bytes(cfg.max_reassembly_total)
        ));
    }
    let given = (!given.is_empty()).then(|| format!("skcluster: config {}", given.join(", ")));
    Ok(Settings { cfg, given, warnings })
}

fn parse(kind: Kind, s: &str) -> Result<Value, &'static str> {
    match kind {
        Kind::Count => whole(s, 1).map(Value::Num).ok_or("must be a whole number, at least 1"),
        Kind::CountOrOff => match s {
            "0" | "0.0" | "false" => Ok(Value::Bound(None)),
            _ => whole(s, 1).map(|n| Value::Bound(Some(n))).ok_or("must be a whole number (0 or false: no bound)"),
        },
        Kind::Blocks => {
            const WHAT: &str =
                "must be CIDR blocks or addresses, IPv4 or IPv6, separated by commas (e.g. \"10.0.0.0/8,127.0.0.1\")";
            let block = |b: &str| {
                let b = b.trim();
                b.parse::<IpNet>().or_else(|_| b.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| WHAT)
            };
            s.split(',').map(block).collect::<Result<_, _>>().map(Value::Blocks)
        }
        Kind::Expose => {
            if s == "registered" {
                return Ok(Value::Expose(Exposure::Registered));
            }
            let name = |n: &str| {
                let n = n.trim();
                let n = n.strip_prefix('@').unwrap_or(n);
                (!n.is_empty() && n.len() <= 255).then(|| n.to_string()).ok_or(
                    "must be \"registered\" or registered names separated by commas (e.g. \"echo,db\"), each 1 to 255 bytes",
                )
            };
            s.split(',').map(name).collect::<Result<_, _>>().map(|n| Value::Expose(Exposure::Names(n)))
        }
        Kind::Tls => TlsMode::parse(s).map(Value::Tls).ok_or("must be off, prefer or require"),
        Kind::File => (!s.is_empty()).then(|| Value::File(PathBuf::from(s))).ok_or("must be a file name"),
        Kind::Bytes => {
            let (digits, unit) = match s.as_bytes().last().map(u8::to_ascii_uppercase) {
                Some(b'K') => (&s[..s.len() - 1], 1usize << 10),
                Some(b'M') => (&s[..s.len() - 1], 1 << 20),
                Some(b'G') => (&s[..s.len() - 1], 1 << 30),
                _ => (s, 1),
            };
            whole(digits.trim_end(), unit)
                .map(Value::Num)
                .ok_or("must be a number of bytes, at least 1 (a whole number, or with a K, M or G suffix)")
        }
        Kind::Seconds => {
            const WHAT: &str = "must be a number of seconds (0 or false: off)";
            if s == "false" {
                return Ok(Value::Secs(None));
            }
            let f: f64 = s.parse().map_err(|_| WHAT)?;
            if !f.is_finite() || f < 0.0 {
                return Err(WHAT);
            }
            if f > MAX_SECS {
                return Err("must be at most a year (31536000 seconds)");
            }
            Ok(Value::Secs((f > 0.0).then(|| Duration::from_secs_f64(f))))
        }
    }
}

/// A whole number (also as skynet writes a Lua float: `1048576.0`, `1e+15`) times `unit`,
/// at least 1, that fits a usize.
fn whole(s: &str, unit: usize) -> Option<usize> {
    let n = match s.parse::<u64>() {
        Ok(n) => n,
        Err(_) => {
            let f: f64 = s.parse().ok()?;
            if !f.is_finite() || f.fract() != 0.0 || !(0.0..=u64::MAX as f64).contains(&f) {
                return None;
            }
            f as u64
        }
    };
    let n = usize::try_from(n).ok()?.checked_mul(unit)?;
    (n >= 1).then_some(n)
}

fn show(v: &Value) -> String {
    match v {
        Value::Num(n) | Value::Bound(Some(n)) => n.to_string(),
        Value::Secs(None) | Value::Bound(None) => "off".into(),
        Value::Secs(Some(d)) => format!("{} s", d.as_secs_f64()),
        Value::Blocks(b) => b.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
        Value::Expose(Exposure::Names(n)) => n.join(","),
        Value::Expose(e) => format!("{e:?}").to_lowercase(),
        Value::Tls(m) => m.as_str().into(),
        Value::File(f) => f.display().to_string(),
    }
}

fn bytes(n: usize) -> String {
    if n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, Vec<String>> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        read(Config::default(), |k| m.get(k).cloned())
    }

    #[test]
    fn no_key_leaves_the_config_as_it_was() {
        let s = with(&[]).unwrap();
        let d = Config::default();
        assert_eq!(s.given, None);
        assert!(s.warnings.is_empty());
        assert_eq!(
            (s.cfg.max_links, s.cfg.max_send_queue, s.cfg.heartbeat, s.cfg.multi_timeout),
            (d.max_links, d.max_send_queue, d.heartbeat, d.multi_timeout)
        );
    }

    #[test]
    fn every_key_reaches_its_setting() {
        let s = with(&[
            ("cluster_max_links", "2"),
            ("cluster_max_reassembly", "512M"),
            ("cluster_max_send", "1g"),
            ("cluster_max_send_queue", "1048576.0"),
            ("cluster_max_message", "64K"),
            ("cluster_max_inflight", "100"),
            ("cluster_multi_timeout", "0"),
            ("cluster_idle_timeout", "1.5"),
            ("cluster_heartbeat", "5"),
        ])
        .unwrap();
        let c = &s.cfg;
        assert_eq!(c.max_links, 2);
        assert_eq!(c.max_reassembly_total, 512 << 20);
        assert_eq!(c.max_send_total, 1 << 30);
        assert_eq!(c.max_send_queue, 1 << 20);
        assert_eq!(c.max_message, 64 << 10);
        assert_eq!(c.max_inflight, 100);
        assert_eq!(c.multi_timeout, None);
        assert_eq!(c.idle_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(c.heartbeat, Some(Heartbeat::every(Duration::from_secs(5))));
        let g = s.given.unwrap();
        assert!(g.contains("cluster_max_links = 2") && g.contains("cluster_heartbeat = 5 s"), "{g}");
        assert!(g.contains("cluster_multi_timeout = off"), "{g}");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn lua_floats_as_skynet_writes_them() {
        // skynet's config loader stores numbers with lua_tostring: 2^20 is "1048576.0",
        // a large float may be "1e+15".
        assert_eq!(parse(Kind::Bytes, "1e+15"), Ok(Value::Num(1_000_000_000_000_000)));
        assert_eq!(parse(Kind::Count, "3.0"), Ok(Value::Num(3)));
        assert_eq!(parse(Kind::Seconds, "false"), Ok(Value::Secs(None)));
        assert_eq!(parse(Kind::Seconds, "0.25"), Ok(Value::Secs(Some(Duration::from_millis(250)))));
    }

    #[test]
    fn bad_values_are_refused_with_the_key_and_the_rule() {
        for (k, v) in [
            ("cluster_max_links", "0"),
            ("cluster_max_links", "-1"),
            ("cluster_max_links", "2.5"),
            ("cluster_max_links", "many"),
            ("cluster_max_send", "10T"),
            ("cluster_max_send", ""),
            ("cluster_max_send_queue", "0M"),
            ("cluster_heartbeat", "-1"),
            ("cluster_heartbeat", "nan"),
            ("cluster_heartbeat", "inf"),
            ("cluster_heartbeat", "true"),
            ("cluster_idle_timeout", "1e12"),
        ] {
            let e = with(&[(k, v)]).expect_err(&format!("{k}={v}"));
            assert_eq!(e.len(), 1);
            assert!(e[0].starts_with(&format!("skcluster: bad config {k} = {v:?}: must be")), "{}", e[0]);
        }
        // all bad values are reported, not only the first
        assert_eq!(with(&[("cluster_max_links", "x"), ("cluster_heartbeat", "y")]).unwrap_err().len(), 2);
    }

    #[test]
    fn a_link_bound_above_the_node_total_is_warned_about() {
        let s = with(&[("cluster_max_send_queue", "1G")]).unwrap();
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("cluster_max_send_queue (1024 MiB) is above cluster_max_send (224 MiB)"));
        let s = with(&[("cluster_max_message", "300M")]).unwrap();
        assert!(s.warnings[0].contains("cluster_max_message (300 MiB) is above cluster_max_reassembly (224 MiB)"));
    }

    #[test]
    fn admission_exposure_and_tls_keys() {
        let s = with(&[
            ("cluster_allow", "10.0.0.0/8, 127.0.0.1,fd00::/8"),
            ("cluster_max_links_per_source", "16"),
            ("cluster_expose", "echo, @db"),
            ("cluster_tls", "require"),
            ("cluster_tls_ca", "/etc/skc/ca.pem"),
            ("cluster_tls_cert", "/etc/skc/node1.pem"),
            ("cluster_tls_key", "/etc/skc/node1.key"),
        ])
        .unwrap();
        let c = &s.cfg;
        let want: Vec<IpNet> = ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"].iter().map(|b| b.parse().unwrap()).collect();
        assert_eq!(c.allow, Some(want));
        assert_eq!(c.max_links_per_source, Some(16));
        assert_eq!(c.exposure, Exposure::Names(vec!["echo".into(), "db".into()]));
        assert_eq!(c.tls.mode, TlsMode::Require);
        assert_eq!(
            (c.tls.ca.to_str(), c.tls.cert.to_str(), c.tls.key.to_str()),
            (Some("/etc/skc/ca.pem"), Some("/etc/skc/node1.pem"), Some("/etc/skc/node1.key"))
        );
        let g = s.given.unwrap();
        assert!(g.contains("cluster_allow = 10.0.0.0/8,127.0.0.1/32,fd00::/8"), "{g}");
        assert!(g.contains("cluster_expose = echo,db, cluster_tls = require, cluster_tls_ca = /etc/skc/ca.pem"), "{g}");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);

        let s =
            with(&[("cluster_expose", "registered"), ("cluster_max_links_per_source", "0"), ("cluster_tls", "off")])
                .unwrap();
        assert_eq!(
            (s.cfg.exposure, s.cfg.max_links_per_source, s.cfg.tls.mode),
            (Exposure::Registered, None, TlsMode::Off)
        );
        assert_eq!(
            s.given.as_deref(),
            Some(
                "skcluster: config cluster_max_links_per_source = off, cluster_expose = registered, cluster_tls = off"
            )
        );
        // The defaults: from anywhere, everything exposed, no TLS.
        let d = with(&[]).unwrap().cfg;
        assert_eq!(
            (d.allow, d.max_links_per_source, d.exposure, d.tls.mode),
            (None, None, Exposure::All, TlsMode::Off)
        );
    }

    #[test]
    fn bad_admission_exposure_and_tls_values_are_refused() {
        for (k, v, rule) in [
            ("cluster_allow", "10.0.0.0/33", "must be CIDR blocks"),
            ("cluster_allow", "10.0.0.0/8,,127.0.0.1", "must be CIDR blocks"),
            ("cluster_allow", "", "must be CIDR blocks"),
            ("cluster_allow", "localhost", "must be CIDR blocks"),
            ("cluster_max_links_per_source", "-1", "must be a whole number (0 or false: no bound)"),
            ("cluster_max_links_per_source", "1.5", "must be a whole number"),
            ("cluster_expose", "", "must be \"registered\" or registered names"),
            ("cluster_expose", "echo,", "must be \"registered\""),
            ("cluster_tls", "on", "must be off, prefer or require"),
            ("cluster_tls", "Require", "must be off, prefer or require"),
            ("cluster_tls_ca", "", "must be a file name"),
        ] {
            let e = with(&[(k, v)]).expect_err(&format!("{k}={v}"));
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(e[0].starts_with(&format!("skcluster: bad config {k} = {v:?}: {rule}")), "{}", e[0]);
        }
        // TLS on needs its three files.
        let e = with(&[("cluster_tls", "prefer"), ("cluster_tls_ca", "ca.pem")]).unwrap_err();
        assert_eq!(
            e,
            vec!["skcluster: bad config cluster_tls = prefer: needs cluster_tls_ca, cluster_tls_cert and cluster_tls_key (missing: cluster_tls_cert, cluster_tls_key)"]
        );
        // Files with TLS off: a warning, not an error.
        let s = with(&[("cluster_tls_ca", "ca.pem")]).unwrap();
        assert_eq!(
            s.warnings,
            vec!["skcluster: cluster_tls_* files are given but cluster_tls is off: they are not used"]
        );
    }
}
