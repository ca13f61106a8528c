//! A tiny flag parser: `--name value`, `--name=value` and boolean `--name`, and the value
//! parsers the subcommands share (counts, byte sizes, seconds). Every error names the flag
//! it is about and fits on one line: the subcommands print it as a usage error (exit 2).

use std::collections::HashMap;
use std::time::Duration;

pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
    /// Arguments that are not flags (only with [`Args::parse_with_operands`]).
    pub operands: Vec<String>,
}

impl Args {
    /// `with_value`: flags that take a value; `booleans`: flags that do not. An argument
    /// that is not a flag is an error.
    pub fn parse(argv: Vec<String>, with_value: &[&str], booleans: &[&str]) -> Result<Args, String> {
        let a = Self::parse_with_operands(argv, with_value, booleans)?;
        match a.operands.first() {
            Some(op) => Err(format!("unexpected argument `{op}`")),
            None => Ok(a),
        }
    }

    /// [`Args::parse`], keeping the arguments that are not flags, in order, in `operands`.
    pub fn parse_with_operands(argv: Vec<String>, with_value: &[&str], booleans: &[&str]) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let mut operands = Vec::new();
        let mut it = argv.into_iter();
        while let Some(a) = it.next() {
            if a == "-h" {
                flags.push("help".to_string());
                continue;
            }
            let Some(name) = a.strip_prefix("--") else {
                operands.push(a);
                continue;
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (name.to_string(), None),
            };
            if name == "help" || booleans.contains(&name.as_str()) {
                if inline.is_some() {
                    return Err(format!("--{name} takes no value"));
                }
                flags.push(name);
            } else if with_value.contains(&name.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().ok_or_else(|| format!("--{name} needs a value"))?,
                };
                values.insert(name, v);
            } else {
                return Err(format!("unknown flag --{name}"));
            }
        }
        Ok(Args { values, flags, operands })
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|s| s.as_str())
    }

    pub fn num<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| format!("--{name}: `{v}` is not a valid number")),
        }
    }

    /// A count of at least 1 (`--max-links N`).
    pub fn count(&self, name: &str) -> Result<Option<usize>, String> {
        self.get(name).map(|v| parse_count(v).map_err(|e| format!("--{name}: {e}"))).transpose()
    }

    /// A byte size with an optional K/M/G suffix (`--max-send 64M`); at least 1.
    pub fn bytes(&self, name: &str) -> Result<Option<usize>, String> {
        let parse = |v: &str| match parse_bytes(v) {
            Ok(0) => Err(format!("--{name}: must be at least 1 byte")),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("--{name}: {e}")),
        };
        self.get(name).map(parse).transpose()
    }

    /// Seconds, decimals allowed, where 0 means off: `None` = flag not given,
    /// `Some(None)` = off, `Some(Some(d))` = on.
    pub fn secs_or_off(&self, name: &str) -> Result<Option<Option<Duration>>, String> {
        self.get(name).map(|v| parse_secs(v).map_err(|e| format!("--{name}: {e}"))).transpose()
    }

    /// Seconds, decimals allowed, more than 0.
    pub fn secs(&self, name: &str) -> Result<Option<Duration>, String> {
        match self.secs_or_off(name)? {
            None => Ok(None),
            Some(Some(d)) => Ok(Some(d)),
            Some(None) => Err(format!("--{name}: must be more than 0 seconds")),
        }
    }
}

/// Prints a usage error as one line naming what is wrong, with where the full usage is,
/// and returns the exit code for it (2).
pub fn usage_error(cmd: &str, e: &str) -> i32 {
    eprintln!("skynet-cluster {cmd}: {e} (see `skynet-cluster {cmd} --help`)");
    2
}

/// A whole number of at least 1.
pub fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// A byte size: a whole number with an optional suffix K, M or G (powers of 1024; `KiB`,
/// `MiB`, `GiB` and `KB`... are read the same, as is a trailing `B`): `4096`, `64K`, `1m`,
/// `2GiB`.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let l = s.trim().to_ascii_lowercase();
    let l = l.strip_suffix("ib").or_else(|| l.strip_suffix('b')).unwrap_or(&l);
    let (num, shift) = match l.as_bytes().last() {
        Some(b'k') => (&l[..l.len() - 1], 10),
        Some(b'm') => (&l[..l.len() - 1], 20),
        Some(b'g') => (&l[..l.len() - 1], 30),
        _ => (l, 0),
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a byte size: a whole number, optionally with K, M or G"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("`{s}` is too large"))
}

/// Seconds (decimals allowed); 0 is `None` (off).
pub fn parse_secs(s: &str) -> Result<Option<Duration>, String> {
    let x: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if x == 0.0 {
        return Ok(None);
    }
    match Duration::try_from_secs_f64(x) {
        Ok(d) if x > 0.0 && d <= Duration::from_secs(100 * 365 * 86400) => Ok(Some(d)),
        _ => Err(format!("`{s}` is not a number of seconds, 0 or more")),
    }
}

/// Parses a size like `0`, `tiny`, `1024`, `1k`, `16KiB`, `1m`, `1MiB`. `tiny` is `None`.
pub fn parse_size(s: &str) -> Result<Option<usize>, String> {
    if s.eq_ignore_ascii_case("tiny") {
        return Ok(None);
    }
    parse_bytes(s).map(Some).map_err(|_| format!("bad size `{s}`"))
}

/// A byte count as people read it: `224 MiB`, `64 KiB`, `1000 B`.
pub fn fmt_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n => format!("{n} B"),
    }
}

/// A duration in seconds, as few digits as it needs: `60 s`, `0.5 s`.
pub fn fmt_secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("64kib"), Ok(64 << 10));
        assert_eq!(parse_bytes("1m"), Ok(1 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("3 MB"), Ok(3 << 20));
        assert_eq!(parse_bytes("10b"), Ok(10));
        assert!(parse_bytes("abc").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("1.5M").is_err());
        assert!(parse_bytes("99999999999999999999G").is_err());
        assert_eq!(parse_size("tiny"), Ok(None));
        assert_eq!(parse_size("16KiB"), Ok(Some(16 << 10)));
    }

    #[test]
    fn secs() {
        assert_eq!(parse_secs("0"), Ok(None));
        assert_eq!(parse_secs("0.0"), Ok(None));
        assert_eq!(parse_secs("1.5"), Ok(Some(Duration::from_millis(1500))));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("nan").is_err());
        assert!(parse_secs("inf").is_err());
        assert!(parse_secs("x").is_err());
    }

    #[test]
    fn counts_and_formats() {
        assert_eq!(parse_count("3"), Ok(3));
        assert!(parse_count("0").is_err());
        assert!(parse_count("abc").is_err());
        assert_eq!(fmt_bytes(224 << 20), "224 MiB");
        assert_eq!(fmt_bytes(1000), "1000 B");
        assert_eq!(fmt_secs(Duration::from_millis(500)), "0.5 s");
    }
}
