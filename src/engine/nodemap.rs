//! The node map as a host gives it (`cluster.reload`, stock's `cluster` config file): one
//! validator with the rules stock's `clusterd` applies, and one reader for the file format.
//! The C API (`skc_reload_text`), the skynet adapter (its reload command) and the shell tool
//! use these, so that a map means the same thing in every host.
//!
//! # Stock's rules (`service/clusterd.lua`, `loadconfig`)
//!
//! * The config file is Lua code run in an empty environment; every global it sets is an
//!   entry, in no particular order.
//! * A key that begins with `__` is an option, not a node: `__nowaiting` (any value but
//!   `false`/`nil` turns it on: a call to a node with no address fails at once instead of
//!   waiting for a reload). Other options are logged by stock and otherwise unused; they are
//!   kept here as text.
//! * Any other key names a node (any string: stock does not restrict the characters). Its
//!   value is the address, a string `"host:port"` (not checked until a connection is made,
//!   as in stock's clustersender), or `false`: the node is marked down (calls fail at once).
//!   Any other value is an error (stock: `assert(address == false or type(address) ==
//!   "string")`).

use std::fmt;

/// One value of a map entry, as the host has it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MapValue<'a> {
    Str(&'a str),
    Bool(bool),
    Num(f64),
    /// Any other value: its Lua type name (`table`, `function`, ...).
    Other(&'a str),
}

impl MapValue<'_> {
    /// Lua's truth: everything but `false` (and `nil`, which never reaches a map).
    fn truthy(&self) -> bool {
        !matches!(self, MapValue::Bool(false))
    }
}

impl fmt::Display for MapValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapValue::Str(s) => f.write_str(s),
            MapValue::Bool(b) => write!(f, "{b}"),
            MapValue::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            MapValue::Num(n) => write!(f, "{n}"),
            MapValue::Other(t) => f.write_str(t),
        }
    }
}

/// A validated node map: the nodes in the order given (`Some("host:port")`, or `None` =
/// marked down), `__nowaiting` when the map sets it, and the other `__` options as text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeMap {
    pub nodes: Vec<(String, Option<String>)>,
    pub nowaiting: Option<bool>,
    pub options: Vec<(String, String)>,
}

impl NodeMap {
    /// Adds one entry under stock's rules (see the module doc).
    pub fn add(&mut self, key: &str, value: MapValue<'_>) -> Result<(), String> {
        if let Some(opt) = key.strip_prefix("__") {
            if opt == "nowaiting" {
                self.nowaiting = Some(value.truthy());
            }
            self.options.push((opt.to_string(), value.to_string()));
            return Ok(());
        }
        if key.is_empty() {
            return Err("a node name is empty".into());
        }
        let addr = match value {
            MapValue::Str(a) => Some(a.to_string()),
            MapValue::Bool(false) => None,
            MapValue::Bool(true) => return Err(format!("the address of [{key}] must be a string or false, got true")),
            MapValue::Num(_) => return Err(format!("the address of [{key}] must be a string or false, got number")),
            MapValue::Other(t) => return Err(format!("the address of [{key}] must be a string or false, got {t}")),
        };
        self.nodes.push((key.to_string(), addr));
        Ok(())
    }

    /// The entries in the shape [`Handle::reload`](super::Handle::reload) takes.
    pub fn reload_entries(&self) -> Vec<(&str, Option<&str>)> {
        self.nodes.iter().map(|(n, a)| (n.as_str(), a.as_deref())).collect()
    }

    /// Reads a map in stock's cluster config file format: the part of Lua such files use.
    /// Entries are `name = value` (a Lua name) or `["any name"] = value`; a value is a
    /// quoted string (`"..."` or `'...'`, with `\\`, `\"`, `\'`, `\n`, `\t` escapes), `true`,
    /// `false` or a number; entries are separated by newlines, `,` or `;`; `--` starts a
    /// comment. Errors name the line.
    pub fn parse(text: &str) -> Result<NodeMap, String> {
        let mut map = NodeMap::default();
        for (ln, line) in text.lines().enumerate() {
            let mut rest = line;
            loop {
                rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',' || c == ';');
                if rest.is_empty() || rest.starts_with("--") {
                    break;
                }
                let at = |e: String| format!("line {}: {e}", ln + 1);
                let (key, r) = read_key(rest).map_err(at)?;
                let r = r.trim_start().strip_prefix('=').ok_or_else(|| at(format!("expected `=` after `{key}`")))?;
                let (value, r) = read_value(r.trim_start()).map_err(at)?;
                match &value {
                    Owned::Str(s) => map.add(&key, MapValue::Str(s)),
                    Owned::Bool(b) => map.add(&key, MapValue::Bool(*b)),
                    Owned::Num(n) => map.add(&key, MapValue::Num(*n)),
                }
                .map_err(at)?;
                rest = r;
            }
        }
        Ok(map)
    }
}

enum Owned {
    Str(String),
    Bool(bool),
    Num(f64),
}

/// A Lua name or a bracketed string key; the rest of the input.
fn read_key(s: &str) -> Result<(String, &str), String> {
    if let Some(r) = s.strip_prefix('[') {
        let (k, r) = read_string(r.trim_start())?;
        let r = r.trim_start().strip_prefix(']').ok_or("expected `]` after a bracketed key")?;
        return Ok((k, r));
    }
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return Err(format!("expected a node name, found `{}`", s.chars().take(20).collect::<String>()));
    }
    Ok((name.to_string(), &s[end..]))
}

fn read_value(s: &str) -> Result<(Owned, &str), String> {
    if s.starts_with('"') || s.starts_with('\'') {
        let (v, r) = read_string(s)?;
        return Ok((Owned::Str(v), r));
    }
    let end = s.find(|c: char| c.is_whitespace() || c == ',' || c == ';').unwrap_or(s.len());
    let word = &s[..end];
    let v = match word {
        "true" => Owned::Bool(true),
        "false" => Owned::Bool(false),
        w => match w.parse::<f64>() {
            Ok(n) if !w.is_empty() => Owned::Num(n),
            _ => return Err(format!("`{w}` is not a value: an address is a quoted \"host:port\", or false")),
        },
    };
    Ok((v, &s[end..]))
}

/// A quoted string at the start of `s` (which begins with its quote).
fn read_string(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().filter(|c| *c == '"' || *c == '\'').ok_or("expected a quoted string")?;
    let mut out = String::new();
    let mut it = s[1..].char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            c if c == q => return Ok((out, &s[1 + i + 1..])),
            '\\' => match it.next().map(|(_, e)| e) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(e @ ('\\' | '"' | '\'')) => out.push(e),
                Some(e) => return Err(format!("unsupported escape `\\{e}` in a string")),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("a string is not closed on its line".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_cluster_config_format() {
        let m = NodeMap::parse(
            "__nowaiting = true\t-- If you turn this flag off ...\n\ndb = \"127.0.0.1:2528\"\n\
             db2 = '127.0.0.1:2529'; db3 = false\n[\"game-1\"] = \"10.0.0.1:7000\", __other = 5\n",
        )
        .unwrap();
        assert_eq!(m.nowaiting, Some(true));
        assert_eq!(
            m.nodes,
            vec![
                ("db".to_string(), Some("127.0.0.1:2528".to_string())),
                ("db2".to_string(), Some("127.0.0.1:2529".to_string())),
                ("db3".to_string(), None),
                ("game-1".to_string(), Some("10.0.0.1:7000".to_string())),
            ]
        );
        assert_eq!(m.options, vec![("nowaiting".into(), "true".into()), ("other".into(), "5".into())]);
        for bad in ["db = 127.0.0.1:1", "db", "d-b = false", "= \"x\"", "a = 1", "a = true", "a = \"open"] {
            assert!(NodeMap::parse(bad).is_err(), "{bad}");
        }
        assert!(NodeMap::parse("ok = false\nbad").unwrap_err().starts_with("line 2"));
        // Any value but false turns __nowaiting on, as Lua's truth does.
        assert_eq!(NodeMap::parse("__nowaiting = 1").unwrap().nowaiting, Some(true));
        assert_eq!(NodeMap::parse("__nowaiting = false").unwrap().nowaiting, Some(false));
    }

    #[test]
    fn values_from_a_host() {
        let mut m = NodeMap::default();
        m.add("a", MapValue::Str("h:1")).unwrap();
        m.add("b", MapValue::Bool(false)).unwrap();
        assert_eq!(
            m.add("c", MapValue::Other("table")).unwrap_err(),
            "the address of [c] must be a string or false, got table"
        );
        m.add("__nowaiting", MapValue::Other("table")).unwrap();
        assert_eq!(m.nowaiting, Some(true));
        assert_eq!(m.reload_entries(), vec![("a", Some("h:1")), ("b", None)]);
    }
}
