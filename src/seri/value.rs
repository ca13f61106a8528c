//! The value model: what one `skynet.pack` argument can be.

use std::fmt;

/// One value of the skynet.pack format.
///
/// Equality ([`PartialEq`]/[`Eq`]) compares [`Value::Real`] **by bit pattern**, so a NaN equals the
/// same NaN, and `0.0 != -0.0`. That makes `decode(encode(v)) == v` hold for every encodable `v`.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// Lua `nil` (type tag 0).
    #[default]
    Nil,
    /// Lua boolean (type tag 1).
    Boolean(bool),
    /// Lua integer subtype (type tag 2, cookies zero/byte/word/dword/qword).
    Integer(i64),
    /// Lua float subtype (type tag 2, cookie 8), 8 bytes of IEEE 754 double, little-endian.
    Real(f64),
    /// Lua string, any bytes (type tags 4 and 5).
    String(Vec<u8>),
    /// Lua table (type tag 6).
    Table(Table),
    /// A light userdata: a raw C pointer value, written as the host's pointer width (8 bytes on
    /// 64-bit hosts) in native (little-endian here) order. It only means something inside the
    /// process that made it; skynet uses it for message buffers it passes around locally.
    LightUserdata(usize),
}

/// A Lua table as skynet.pack writes it.
///
/// `array` is the sequence part `t[1..n]` (skynet writes `rawlen(t)` values, holes included as
/// [`Value::Nil`]). `hash` holds every other key with its value. The encoder writes `hash` in vector
/// order; the decoder fills it in stream order. See the module docs for what that means for byte
/// equality with stock skynet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Values at keys `1..=array.len()`, in order.
    pub array: Vec<Value>,
    /// Other key/value pairs, in the order they are (to be) written.
    pub hash: Vec<(Value, Value)>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table with only an array part.
    pub fn from_array(array: Vec<Value>) -> Self {
        Table { array, hash: Vec::new() }
    }

    /// A table with only a hash part, in the given order.
    pub fn from_pairs(hash: Vec<(Value, Value)>) -> Self {
        Table { array: Vec::new(), hash }
    }

    /// True when both parts are empty.
    pub fn is_empty(&self) -> bool {
        self.array.is_empty() && self.hash.is_empty()
    }

    /// Lua-style lookup, as the table would be after `skynet.unpack`: the **last** matching pair of
    /// `hash` wins (numbers compare by value, so `2.0` finds key `2`); otherwise integer keys
    /// `1..=array.len()` read the array part. `None` when absent (a `Nil` value may also mean absent).
    pub fn get(&self, key: &Value) -> Option<&Value> {
        // Pairs are written after the array part, so a pair that repeats an array index wins.
        if let Some((_, v)) = self.hash.iter().rev().find(|(k, _)| lua_key_eq(k, key)) {
            return Some(v);
        }
        let i = match *key {
            Value::Integer(i) => i,
            Value::Real(f) => real_as_int_key(f)?,
            _ => return None,
        };
        if i >= 1 && (i as u64) <= self.array.len() as u64 {
            Some(&self.array[(i - 1) as usize])
        } else {
            None
        }
    }

    /// [`Table::get`] with a string key.
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        self.hash
            .iter()
            .rev()
            .find(|(k, _)| matches!(k, Value::String(s) if s.as_slice() == key.as_bytes()))
            .map(|(_, v)| v)
    }
}

impl FromIterator<Value> for Table {
    /// A table with only an array part.
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Table::from_array(iter.into_iter().collect())
    }
}

impl FromIterator<(Value, Value)> for Table {
    /// A table with only a hash part, pairs in iteration order.
    fn from_iter<I: IntoIterator<Item = (Value, Value)>>(iter: I) -> Self {
        Table::from_pairs(iter.into_iter().collect())
    }
}

/// A float key with an exact integer value becomes that integer key in Lua.
fn real_as_int_key(f: f64) -> Option<i64> {
    // [-2^63, 2^63): the floats that convert to an i64 exactly.
    if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

/// Key equality as Lua's table lookup sees it (numbers by value across subtypes).
fn lua_key_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Integer(x), Value::Real(y)) | (Value::Real(y), Value::Integer(x)) => real_as_int_key(*y) == Some(*x),
        (Value::Real(x), Value::Real(y)) => x == y,
        _ => a == b,
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            (Value::Integer(a), Value::Integer(b)) => a == b,
            (Value::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Table(a), Value::Table(b)) => a == b,
            (Value::LightUserdata(a), Value::LightUserdata(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Value {
    /// The Lua type name (`"nil"`, `"boolean"`, `"number"`, `"string"`, `"table"`, `"userdata"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Boolean(_) => "boolean",
            Value::Integer(_) | Value::Real(_) => "number",
            Value::String(_) => "string",
            Value::Table(_) => "table",
            Value::LightUserdata(_) => "userdata",
        }
    }

    /// True for [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The bytes of a string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A string that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// An integer. Floats are not converted (use [`Value::as_f64`] for any number).
    pub fn as_integer(&self) -> Option<i64> {
        match *self {
            Value::Integer(i) => Some(i),
            _ => None,
        }
    }

    /// Any number as `f64` (integers converted like Lua does, possibly rounding).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Integer(i) => Some(i as f64),
            Value::Real(f) => Some(f),
            _ => None,
        }
    }

    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Boolean(b) => Some(b),
            _ => None,
        }
    }

    /// A table.
    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    /// A light userdata pointer value.
    pub fn as_lightuserdata(&self) -> Option<usize> {
        match *self {
            Value::LightUserdata(p) => Some(p),
            _ => None,
        }
    }

    /// Lua truthiness: everything but `nil` and `false` is true.
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Nil | Value::Boolean(false))
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Integer(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Real(f64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.as_bytes().to_vec())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v.into_bytes())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::String(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::String(v.to_vec())
    }
}
impl<const N: usize> From<&[u8; N]> for Value {
    fn from(v: &[u8; N]) -> Self {
        Value::String(v.to_vec())
    }
}
impl From<Table> for Value {
    fn from(v: Table) -> Self {
        Value::Table(v)
    }
}
impl From<()> for Value {
    fn from(_: ()) -> Self {
        Value::Nil
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}

impl fmt::Display for Value {
    /// A short Lua-like rendering, for logs and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Real(x) => write!(f, "{x:?}"),
            Value::String(s) => write!(f, "{:?}", String::from_utf8_lossy(s)),
            Value::Table(t) => {
                f.write_str("{")?;
                let mut first = true;
                for v in &t.array {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    write!(f, "{v}")?;
                }
                for (k, v) in &t.hash {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    write!(f, "[{k}] = {v}")?;
                }
                f.write_str("}")
            }
            Value::LightUserdata(p) => write!(f, "userdata: {p:#x}"),
        }
    }
}
