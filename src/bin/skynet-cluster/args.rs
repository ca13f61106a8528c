//! A tiny flag parser: `--name value`, `--name=value` and boolean `--name`.

use std::collections::HashMap;

pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    /// `with_value`: flags that take a value; `booleans`: flags that do not.
    pub fn parse(argv: Vec<String>, with_value: &[&str], booleans: &[&str]) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let mut it = argv.into_iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument `{a}`"));
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
        Ok(Args { values, flags })
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
}

/// Parses a size like `0`, `tiny`, `1024`, `1k`, `16KiB`, `1m`, `1MiB`. `tiny` is `None`.
pub fn parse_size(s: &str) -> Result<Option<usize>, String> {
    let l = s.to_ascii_lowercase();
    if l == "tiny" {
        return Ok(None);
    }
    let (num, mult) = if let Some(n) = l.strip_suffix("kib").or_else(|| l.strip_suffix('k')) {
        (n, 1024)
    } else if let Some(n) = l.strip_suffix("mib").or_else(|| l.strip_suffix('m')) {
        (n, 1 << 20)
    } else {
        (l.as_str(), 1)
    };
    num.trim().parse::<usize>().map(|n| Some(n * mult)).map_err(|_| format!("bad size `{s}`"))
}
