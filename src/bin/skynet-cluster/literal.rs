//! Lua literals <-> skynet.pack values, for the command-line tool: `42`, `-1.5`, `"GET"`,
//! `'a\n'`, `[[long]]`, `true`, `nil`, `{x=1, "y", [10]=false}`.
//!
//! [`parse`] reads one literal the way Lua's parser reads a constant expression made of
//! literals and table constructors (no variables, no operators except a leading `-`, plus the
//! spellings `math.huge`, `-math.huge` and `0/0` that [`print`] uses for infinities and NaN).
//! A table becomes what `skynet.pack` would write for it: positional items form the array part,
//! then `[n+1] = v` keys that extend it are moved into it (Lua would store them there too), and
//! a later assignment to the same key replaces an earlier one, as in a Lua constructor.
//! [`print`] writes a value back as a Lua literal that [`parse`] (and Lua) reads to the same value.

use skynet_cluster::seri::{Table, Value};
use std::fmt::Write;

/// Parses one Lua literal (surrounding whitespace allowed).
pub fn parse(src: &str) -> Result<Value, String> {
    let mut p = Parser { s: src.as_bytes(), i: 0, depth: 0 };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i < p.s.len() {
        return Err(p.err("unexpected text after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

const KEYWORDS: &[&str] = &[
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in", "local", "nil",
    "not", "or", "repeat", "return", "then", "true", "until", "while",
];

fn is_name(b: &[u8]) -> bool {
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !KEYWORDS.contains(&std::str::from_utf8(b).unwrap_or(""))
}

impl Parser<'_> {
    fn err(&self, msg: &str) -> String {
        format!("{msg} at offset {}", self.i)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        loop {
            while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                self.i += 1;
            }
            if self.s[self.i..].starts_with(b"--") {
                self.i += 2;
                if let Some(level) = self.long_open() {
                    let _ = self.long_body(level);
                } else {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                }
                continue;
            }
            return;
        }
    }

    fn eat(&mut self, t: &[u8]) -> bool {
        if self.s[self.i..].starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> &[u8] {
        let st = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.') {
            self.i += 1;
        }
        &self.s[st..self.i]
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            None => Err(self.err("expected a value")),
            Some(b'"') | Some(b'\'') => self.short_string().map(Value::String),
            Some(b'[') => match self.long_open() {
                Some(level) => self.long_body(level).map(Value::String),
                None => Err(self.err("expected a value")),
            },
            Some(b'{') => self.table(),
            Some(b'-') => {
                self.i += 1;
                self.ws();
                if self.eat(b"math.huge") {
                    return Ok(Value::Real(f64::NEG_INFINITY));
                }
                match self.number()? {
                    Value::Integer(n) => Ok(Value::Integer(n.wrapping_neg())),
                    Value::Real(r) => Ok(Value::Real(-r)),
                    _ => unreachable!(),
                }
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                if self.eat(b"0/0") {
                    return Ok(Value::Real(f64::NAN));
                }
                self.number()
            }
            Some(_) => {
                let st = self.i;
                let w = self.word().to_vec();
                match &w[..] {
                    b"nil" => Ok(Value::Nil),
                    b"true" => Ok(Value::Boolean(true)),
                    b"false" => Ok(Value::Boolean(false)),
                    b"math.huge" => Ok(Value::Real(f64::INFINITY)),
                    _ => {
                        self.i = st;
                        let shown: String = String::from_utf8_lossy(&self.s[st..]).chars().take(20).collect();
                        Err(self
                            .err(&format!("`{shown}` is not a Lua literal (strings need quotes, e.g. '\"{shown}\"')")))
                    }
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let st = self.i;
        let s = self.s;
        let hex = s[st..].starts_with(b"0x") || s[st..].starts_with(b"0X");
        if hex {
            self.i += 2;
            let ds = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.i += 1;
            }
            if self.i == ds || self.peek().is_some_and(|c| c == b'.' || c == b'p' || c == b'P') {
                return Err(self.err("unsupported hexadecimal number"));
            }
            // Lua wraps hexadecimal integers modulo 2^64.
            let mut v: u64 = 0;
            for &c in &s[ds..self.i] {
                v = v.wrapping_mul(16).wrapping_add((c as char).to_digit(16).unwrap() as u64);
            }
            return Ok(Value::Integer(v as i64));
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'.') {
            self.i += 1;
        }
        if self.peek().is_some_and(|c| c == b'e' || c == b'E') {
            self.i += 1;
            if self.peek().is_some_and(|c| c == b'+' || c == b'-') {
                self.i += 1;
            }
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
        }
        if self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return Err(self.err("malformed number"));
        }
        let t = std::str::from_utf8(&s[st..self.i]).unwrap();
        let is_float = t.contains(['.', 'e', 'E']);
        if !is_float {
            if let Ok(n) = t.parse::<i64>() {
                return Ok(Value::Integer(n));
            }
            // A decimal integer that does not fit becomes a float, as in Lua.
        }
        t.parse::<f64>().map(Value::Real).map_err(|_| {
            self.i = st;
            self.err("malformed number")
        })
    }

    fn short_string(&mut self) -> Result<Vec<u8>, String> {
        let q = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unfinished string"));
            };
            self.i += 1;
            match c {
                b'\n' => return Err(self.err("unfinished string")),
                c if c == q => return Ok(out),
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.err("unfinished string"));
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'a' => out.push(7),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'v' => out.push(11),
                        b'\\' | b'"' | b'\'' => out.push(e),
                        b'\n' => out.push(b'\n'),
                        b'z' => {
                            while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                                self.i += 1;
                            }
                        }
                        b'x' => {
                            let h = self.s.get(self.i..self.i + 2).and_then(|h| std::str::from_utf8(h).ok());
                            let v = h
                                .and_then(|h| u8::from_str_radix(h, 16).ok())
                                .ok_or_else(|| self.err("bad \\x escape"))?;
                            self.i += 2;
                            out.push(v);
                        }
                        b'u' => {
                            if !self.eat(b"{") {
                                return Err(self.err("bad \\u escape"));
                            }
                            let st = self.i;
                            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                                self.i += 1;
                            }
                            let v = std::str::from_utf8(&self.s[st..self.i])
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.err("bad \\u escape"))?;
                            if !self.eat(b"}") {
                                return Err(self.err("bad \\u escape"));
                            }
                            let mut b = [0u8; 4];
                            out.extend_from_slice(v.encode_utf8(&mut b).as_bytes());
                        }
                        d if d.is_ascii_digit() => {
                            let mut v: u32 = (d - b'0') as u32;
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(c) if c.is_ascii_digit() => {
                                        v = v * 10 + (c - b'0') as u32;
                                        self.i += 1;
                                    }
                                    _ => break,
                                }
                            }
                            if v > 255 {
                                return Err(self.err("decimal escape too large"));
                            }
                            out.push(v as u8);
                        }
                        _ => return Err(self.err("invalid escape sequence")),
                    }
                }
                c => out.push(c),
            }
        }
    }

    /// `[[` or `[=*[`: the level, the opening consumed. Nothing consumed when it is not one.
    fn long_open(&mut self) -> Option<usize> {
        let rest = &self.s[self.i..];
        if rest.first() != Some(&b'[') {
            return None;
        }
        let level = rest[1..].iter().take_while(|&&c| c == b'=').count();
        if rest.get(1 + level) == Some(&b'[') {
            self.i += level + 2;
            Some(level)
        } else {
            None
        }
    }

    fn long_body(&mut self, level: usize) -> Result<Vec<u8>, String> {
        let mut close = vec![b']'];
        close.extend(std::iter::repeat(b'=').take(level));
        close.push(b']');
        // A newline right after the opening bracket is skipped, as in Lua.
        let _ = self.eat(b"\r\n") || self.eat(b"\n");
        let rest = &self.s[self.i..];
        match rest.windows(close.len()).position(|w| w == close) {
            Some(p) => {
                let v = rest[..p].to_vec();
                self.i += p + close.len();
                Ok(v)
            }
            None => Err(self.err("unfinished long string")),
        }
    }

    fn table(&mut self) -> Result<Value, String> {
        self.depth += 1;
        if self.depth > skynet_cluster::seri::MAX_DEPTH + 1 {
            return Err(self.err("tables nested too deep"));
        }
        self.i += 1; // {
        let mut array: Vec<Value> = Vec::new();
        let mut hash: Vec<(Value, Value)> = Vec::new();
        loop {
            self.ws();
            if self.eat(b"}") {
                break;
            }
            if self.peek() == Some(b'[') && self.long_open().is_none() {
                self.i += 1;
                self.ws();
                let k = self.value()?;
                self.ws();
                if !self.eat(b"]") {
                    return Err(self.err("expected `]`"));
                }
                self.ws();
                if !self.eat(b"=") {
                    return Err(self.err("expected `=`"));
                }
                self.ws();
                let v = self.value()?;
                match &k {
                    Value::Nil => return Err(self.err("table index is nil")),
                    Value::Real(r) if r.is_nan() => return Err(self.err("table index is NaN")),
                    _ => {}
                }
                hash.push((k, v));
            } else {
                // `name = value`, or a positional value.
                let st = self.i;
                let w = self.word().to_vec();
                self.ws();
                if is_name(&w) && self.peek() == Some(b'=') && self.s.get(self.i + 1) != Some(&b'=') {
                    self.i += 1;
                    self.ws();
                    let v = self.value()?;
                    hash.push((Value::String(w), v));
                } else {
                    self.i = st;
                    array.push(self.value()?);
                }
            }
            self.ws();
            if self.eat(b",") || self.eat(b";") {
                continue;
            }
            self.ws();
            if self.eat(b"}") {
                break;
            }
            return Err(self.err("expected `,`, `;` or `}`"));
        }
        self.depth -= 1;
        Ok(Value::Table(normalize(array, hash)))
    }
}

/// Lua constructor semantics: later assignments to a key win; `[n+1]` keys extend the array.
fn normalize(mut array: Vec<Value>, hash: Vec<(Value, Value)>) -> Table {
    // Trailing nils do not count in the array part (rawlen stops before them).
    let mut h: Vec<(Value, Value)> = Vec::new();
    for (k, v) in hash {
        let k = match k {
            Value::Real(r) if r.fract() == 0.0 && r.abs() < 9.0e15 => Value::Integer(r as i64),
            k => k,
        };
        // A positional item wins over an explicit key for the same slot (it is stored last in
        // Lua's constructor); an explicit key replaces earlier explicit ones.
        if let Value::Integer(i) = k {
            if i >= 1 && (i as usize) <= array.len() {
                continue;
            }
        }
        h.retain(|(x, _)| *x != k);
        h.push((k, v));
    }
    loop {
        let next = Value::Integer(array.len() as i64 + 1);
        match h.iter().position(|(k, _)| *k == next) {
            Some(p) if !h[p].1.is_nil() => array.push(h.remove(p).1),
            _ => break,
        }
    }
    while array.last().is_some_and(|v| v.is_nil()) {
        array.pop();
    }
    h.retain(|(_, v)| !v.is_nil());
    Table { array, hash: h }
}

/// Writes `v` as a Lua literal.
pub fn print(v: &Value) -> String {
    let mut s = String::new();
    write_value(&mut s, v);
    s
}

fn write_value(s: &mut String, v: &Value) {
    match v {
        Value::Nil => s.push_str("nil"),
        Value::Boolean(b) => s.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            if *i == i64::MIN {
                // `-9223372036854775808` reads as a float in Lua; the hex form is the integer.
                s.push_str("0x8000000000000000");
            } else {
                let _ = write!(s, "{i}");
            }
        }
        Value::Real(r) => {
            if r.is_nan() {
                s.push_str("0/0");
            } else if r.is_infinite() {
                s.push_str(if *r > 0.0 { "math.huge" } else { "-math.huge" });
            } else {
                let t = format!("{r:?}"); // shortest form that reads back exactly
                s.push_str(&t);
                if !t.contains(['.', 'e', 'E']) {
                    s.push_str(".0");
                }
            }
        }
        Value::String(b) => write_string(s, b),
        Value::Table(t) => {
            s.push('{');
            let mut first = true;
            let mut sep = |s: &mut String| {
                if !first {
                    s.push_str(", ");
                }
                first = false;
            };
            for x in &t.array {
                sep(s);
                write_value(s, x);
            }
            for (k, x) in &t.hash {
                sep(s);
                match k {
                    Value::String(n) if is_name(n) => s.push_str(std::str::from_utf8(n).unwrap()),
                    k => {
                        s.push('[');
                        write_value(s, k);
                        s.push(']');
                    }
                }
                s.push_str(" = ");
                write_value(s, x);
            }
            s.push('}');
        }
        Value::LightUserdata(p) => {
            // Not a Lua literal: a pointer from another process.
            let _ = write!(s, "lightuserdata({p:#x})");
        }
    }
}

fn write_string(s: &mut String, b: &[u8]) {
    s.push('"');
    let text = std::str::from_utf8(b).ok();
    match text {
        Some(t) => {
            for c in t.chars() {
                push_char(s, c);
            }
        }
        None => {
            for &c in b {
                if c < 0x80 {
                    push_char(s, c as char);
                } else {
                    let _ = write!(s, "\\{c:03}");
                }
            }
        }
    }
    s.push('"');
}

fn push_char(s: &mut String, c: char) {
    match c {
        '"' => s.push_str("\\\""),
        '\\' => s.push_str("\\\\"),
        '\n' => s.push_str("\\n"),
        '\r' => s.push_str("\\r"),
        '\t' => s.push_str("\\t"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(s, "\\{:03}", c as u32);
        }
        c => s.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(items: Vec<Value>, hash: Vec<(Value, Value)>) -> Value {
        Value::Table(Table { array: items, hash })
    }

    #[test]
    fn scalars() {
        assert_eq!(parse("42").unwrap(), Value::Integer(42));
        assert_eq!(parse(" -7 ").unwrap(), Value::Integer(-7));
        assert_eq!(parse("0x10").unwrap(), Value::Integer(16));
        assert_eq!(parse("1.5").unwrap(), Value::Real(1.5));
        assert_eq!(parse("1e3").unwrap(), Value::Real(1000.0));
        assert_eq!(parse("9223372036854775808").unwrap(), Value::Real(9223372036854775808.0));
        assert_eq!(parse("0xffffffffffffffff").unwrap(), Value::Integer(-1));
        assert_eq!(parse("true").unwrap(), Value::Boolean(true));
        assert_eq!(parse("nil").unwrap(), Value::Nil);
        assert_eq!(parse(r#""GET""#).unwrap(), Value::String(b"GET".to_vec()));
        assert_eq!(parse(r"'a\n\x41\65\u{e9}\z   b'").unwrap(), Value::String("a\nAA\u{e9}b".as_bytes().to_vec()));
        assert_eq!(parse("[==[x]]y]==]").unwrap(), Value::String(b"x]]y".to_vec()));
        assert_eq!(parse("[[\nline]]").unwrap(), Value::String(b"line".to_vec()));
        assert!(parse("GET").unwrap_err().contains("quotes"));
        assert!(parse("1 2").is_err());
        assert!(parse("'open").is_err());
        assert!(parse("12abc").is_err());
    }

    #[test]
    fn tables_follow_lua_constructor_rules() {
        assert_eq!(
            parse(r#"{x=1,"y"}"#).unwrap(),
            t(vec![Value::String(b"y".to_vec())], vec![(Value::String(b"x".to_vec()), Value::Integer(1))])
        );
        assert_eq!(parse("{[1]='a', [2]='b'}").unwrap(), t(vec!["a".into(), "b".into()], vec![]));
        assert_eq!(parse("{1, 2, nil}").unwrap(), t(vec![1.into(), 2.into()], vec![]));
        assert_eq!(parse("{x=1, x=2}").unwrap(), t(vec![], vec![("x".into(), 2.into())]));
        assert_eq!(
            parse("{{}, {1}; -- c\n [true]=false}").unwrap(),
            t(vec![t(vec![], vec![]), t(vec![1.into()], vec![])], vec![(true.into(), false.into())])
        );
        assert!(parse("{[nil]=1}").is_err());
        assert!(parse("{1 2}").is_err());
        let deep = "{".repeat(40) + &"}".repeat(40);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn print_reads_back() {
        for src in [
            "42",
            "-1",
            "1.5",
            "2.0",
            "1e+300",
            "math.huge",
            "-math.huge",
            "true",
            "nil",
            r#""a\"b\\c\n\0011é""#,
            r#"{1, 2, x = "y", [10] = false, ["a b"] = {}}"#,
            "0x8000000000000000",
        ] {
            let v = parse(src).unwrap();
            let p = print(&v);
            assert_eq!(parse(&p).unwrap(), v, "{src} -> {p}");
        }
        assert_eq!(print(&parse(r#"{x=1,"y"}"#).unwrap()), r#"{"y", x = 1}"#);
        assert_eq!(print(&Value::Real(f64::NAN)), "0/0");
        assert!(matches!(parse("0/0").unwrap(), Value::Real(r) if r.is_nan()));
        assert_eq!(print(&Value::String(vec![0xff, b'a'])), r#""\255a""#);
    }
}
