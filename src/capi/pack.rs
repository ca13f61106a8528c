//! skynet.pack from C: a builder (`skc_pack_*`) that makes the bytes `skynet.pack(...)` makes,
//! and a reader (`skc_unpack`, `skc_values_*`) for the bytes a Lua service answers with.
//!
//! ```c
//! skc_pack *p; uint8_t *req; size_t n;
//! skc_pack_new(&p);
//! skc_pack_string(p, "GET"); skc_pack_string(p, "a");
//! skc_pack_finish(p, &req, &n);            // p is gone; req is skynet.pack("GET", "a")
//! ```

use super::error::{guard, skc_status, Error, Res};
use super::handle::{self, cstr, insert, lookup, malloc_copy, out, remove, slice, Obj};
use crate::seri::{self, Table, Value};
use parking_lot::Mutex;
use std::os::raw::c_char;
use std::sync::Arc;

/// A skynet.pack builder. Opaque: `skc_pack_new`, then values, then `skc_pack_finish` (or
/// `skc_pack_free` to abandon it).
pub struct skc_pack {
    _private: [u8; 0],
}

/// A decoded skynet.pack message: a list of values. Opaque: made by `skc_unpack`,
/// `skc_values_array` or `skc_values_hash`; freed with `skc_values_free`.
pub struct skc_values {
    _private: [u8; 0],
}

/// The type of one value in a `skc_values`.
/// cbindgen:prefix-with-name=false
/// cbindgen:rename-all=None
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum skc_type {
    SKC_TYPE_NIL = 0,
    SKC_TYPE_BOOLEAN = 1,
    /// A Lua integer.
    SKC_TYPE_INTEGER = 2,
    /// A Lua float.
    SKC_TYPE_REAL = 3,
    /// A Lua string (any bytes).
    SKC_TYPE_STRING = 4,
    SKC_TYPE_TABLE = 5,
    /// A light userdata (a pointer value from another process: only its number is kept).
    SKC_TYPE_USERDATA = 6,
}

enum Slot {
    Array,
    Key,
    Value(Value),
}

struct Frame {
    table: Table,
    slot: Slot,
}

#[derive(Default)]
pub(crate) struct Builder {
    top: Vec<Value>,
    open: Vec<Frame>,
}

impl Builder {
    fn add(&mut self, v: Value) -> Res<()> {
        let Some(f) = self.open.last_mut() else {
            self.top.push(v);
            return Ok(());
        };
        match std::mem::replace(&mut f.slot, Slot::Array) {
            Slot::Array => f.table.array.push(v),
            Slot::Key => {
                let bad = match &v {
                    Value::Nil => Some("nil"),
                    Value::Real(r) if r.is_nan() => Some("NaN"),
                    _ => None,
                };
                if let Some(b) = bad {
                    f.slot = Slot::Key;
                    return Err(Error::new(skc_status::SKC_ERR_ENCODE, format!("a table key cannot be {b}")));
                }
                f.slot = Slot::Value(v);
            }
            Slot::Value(k) => f.table.hash.push((k, v)),
        }
        Ok(())
    }
}

fn builder(p: *const skc_pack) -> Res<Arc<Mutex<Builder>>> {
    lookup("skc_pack", p as usize, |o| match o {
        Obj::Pack(b) => Some(b.clone()),
        _ => None,
    })
}

fn with(p: *mut skc_pack, f: impl FnOnce(&mut Builder) -> Res<()>) -> skc_status {
    guard(|| {
        let b = builder(p)?;
        let mut g = b.lock();
        f(&mut g)
    })
}

/// Starts a message. On failure `*out` is set to NULL.
///
/// Ownership: the caller owns the builder; `skc_pack_finish` or `skc_pack_free` frees it.
/// Thread-safety: thread-safe (a builder may be used from any thread, one call at a time is
/// not required: calls are serialized).
#[no_mangle]
pub extern "C" fn skc_pack_new(out_p: *mut *mut skc_pack) -> skc_status {
    handle::clear(out_p);
    guard(|| {
        if out_p.is_null() {
            return Err(Error::null("out"));
        }
        let t = insert(Obj::Pack(Arc::new(Mutex::new(Builder::default()))));
        out(out_p, "out", t as *mut skc_pack)
    })
}

/// Appends `nil`. Ownership: nothing is allocated for the caller. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_nil(p: *mut skc_pack) -> skc_status {
    with(p, |b| b.add(Value::Nil))
}

/// Appends a boolean. Ownership: nothing is allocated for the caller. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_boolean(p: *mut skc_pack, v: bool) -> skc_status {
    with(p, |b| b.add(Value::Boolean(v)))
}

/// Appends a Lua integer. Ownership: nothing is allocated for the caller. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_integer(p: *mut skc_pack, v: i64) -> skc_status {
    with(p, |b| b.add(Value::Integer(v)))
}

/// Appends a Lua float. Ownership: nothing is allocated for the caller. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_real(p: *mut skc_pack, v: f64) -> skc_status {
    with(p, |b| b.add(Value::Real(v)))
}

/// Appends a string given NUL-terminated.
///
/// Ownership: `s` is copied. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_string(p: *mut skc_pack, s: *const c_char) -> skc_status {
    with(p, |b| {
        let s = super::handle::cbytes(s, "s")?;
        b.add(Value::String(s.to_vec()))
    })
}

/// Appends a string of `len` bytes (any bytes; `s` may be NULL when `len` is 0).
///
/// Ownership: the bytes are copied. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_lstring(p: *mut skc_pack, s: *const u8, len: usize) -> skc_status {
    with(p, |b| {
        let s = slice(s, len, "s")?;
        b.add(Value::String(s.to_vec()))
    })
}

/// Opens a table: the values appended next go into its array part (`t[1]`, `t[2]`, ...) until
/// `skc_pack_table_end`, except those placed as keys/values by `skc_pack_key` / `skc_pack_field`.
///
/// Ownership: nothing is allocated for the caller. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_table_begin(p: *mut skc_pack) -> skc_status {
    with(p, |b| {
        if b.open.len() > seri::MAX_DEPTH {
            return Err(Error::new(skc_status::SKC_ERR_ENCODE, "tables nested too deep"));
        }
        b.open.push(Frame { table: Table::new(), slot: Slot::Array });
        Ok(())
    })
}

/// Inside a table: the next value appended is a key, and the one after it that key's value
/// (a hash entry, written in the order given). A nil or NaN key gives `SKC_ERR_ENCODE`.
///
/// Ownership: nothing is allocated for the caller. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_key(p: *mut skc_pack) -> skc_status {
    with(p, |b| match b.open.last_mut() {
        Some(f) if matches!(f.slot, Slot::Array) => {
            f.slot = Slot::Key;
            Ok(())
        }
        Some(_) => Err(Error::new(skc_status::SKC_ERR_STATE, "skc_pack_key: the previous key has no value yet")),
        None => Err(Error::new(skc_status::SKC_ERR_STATE, "skc_pack_key outside a table")),
    })
}

/// Inside a table: the next value appended is the value of string key `key` (`t.key = ...`).
///
/// Ownership: `key` is copied. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_field(p: *mut skc_pack, key: *const c_char) -> skc_status {
    with(p, |b| {
        let k = super::handle::cbytes(key, "key")?;
        match b.open.last_mut() {
            Some(f) if matches!(f.slot, Slot::Array) => {
                f.slot = Slot::Value(Value::String(k.to_vec()));
                Ok(())
            }
            Some(_) => Err(Error::new(skc_status::SKC_ERR_STATE, "skc_pack_field: the previous key has no value yet")),
            None => Err(Error::new(skc_status::SKC_ERR_STATE, "skc_pack_field outside a table")),
        }
    })
}

/// Closes the innermost open table and appends it where it belongs.
///
/// Ownership: nothing is allocated for the caller. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_table_end(p: *mut skc_pack) -> skc_status {
    with(p, |b| {
        match b.open.last() {
            None => return Err(Error::new(skc_status::SKC_ERR_STATE, "skc_pack_table_end without an open table")),
            Some(f) if !matches!(f.slot, Slot::Array) => {
                return Err(Error::new(skc_status::SKC_ERR_STATE, "skc_pack_table_end: a key has no value"))
            }
            _ => {}
        }
        let f = b.open.pop().expect("checked above");
        b.add(Value::Table(f.table))
    })
}

/// Appends a copy of value `i` of `v` (any type, tables included): forwards a value read from
/// one message into another.
///
/// Ownership: `v` is not consumed. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_value(p: *mut skc_pack, v: *const skc_values, i: usize) -> skc_status {
    with(p, |b| {
        let vals = values(v)?;
        let x = at(&vals, i)?.clone();
        b.add(x)
    })
}

/// Finishes the message: `*out`/`*len` receive the skynet.pack bytes of every value appended
/// at top level, in order (never NULL, even for an empty message). `SKC_ERR_STATE` if a table
/// is still open, `SKC_ERR_ENCODE` if skynet.pack could not encode the values.
///
/// Ownership: always consumes and frees the builder `p`, on success and on error (except for
/// `SKC_ERR_HANDLE`/`SKC_ERR_NULL` on `p` itself). The caller owns `*out` and frees it with
/// `skc_free`. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_finish(p: *mut skc_pack, out_buf: *mut *mut u8, len: *mut usize) -> skc_status {
    handle::clear(out_buf);
    guard(|| {
        let b = remove("skc_pack", p as usize, |o| match o {
            Obj::Pack(b) => Ok(b),
            o => Err(o),
        })?;
        let b = std::mem::take(&mut *b.lock());
        if out_buf.is_null() || len.is_null() {
            return Err(Error::null("out or len"));
        }
        if !b.open.is_empty() {
            return Err(Error::new(skc_status::SKC_ERR_STATE, format!("{} table(s) still open", b.open.len())));
        }
        let bytes = seri::encode(&b.top).map_err(|e| Error::new(skc_status::SKC_ERR_ENCODE, e.to_string()))?;
        let m = malloc_copy(&bytes)?;
        out(len, "len", bytes.len())?;
        out(out_buf, "out", m)
    })
}

/// Abandons a builder.
///
/// Ownership: frees `p`; any later use (a second free included) gives `SKC_ERR_HANDLE`.
/// Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_pack_free(p: *mut skc_pack) -> skc_status {
    guard(|| {
        remove("skc_pack", p as usize, |o| match o {
            Obj::Pack(b) => Ok(b),
            o => Err(o),
        })?;
        Ok(())
    })
}

// ---- reader ----

fn values(v: *const skc_values) -> Res<Arc<Vec<Value>>> {
    lookup("skc_values", v as usize, |o| match o {
        Obj::Values(x) => Some(x.clone()),
        _ => None,
    })
}

fn at(v: &[Value], i: usize) -> Res<&Value> {
    v.get(i)
        .ok_or_else(|| Error::new(skc_status::SKC_ERR_RANGE, format!("index {i} is out of range (count {})", v.len())))
}

fn new_values(v: Vec<Value>, outp: *mut *mut skc_values) -> Res<()> {
    let t = insert(Obj::Values(Arc::new(v)));
    out(outp, "out", t as *mut skc_values)
}

/// Decodes skynet.pack bytes (`data`/`len`, e.g. an answer from `skc_call`) into a list of
/// values. Malformed bytes give `SKC_ERR_DECODE` with stock's error text. On failure `*out` is
/// set to NULL.
///
/// Ownership: `data` is borrowed for the call (everything is copied); the caller owns `*out`
/// and frees it with `skc_values_free`. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_unpack(data: *const u8, len: usize, out_v: *mut *mut skc_values) -> skc_status {
    handle::clear(out_v);
    guard(|| {
        if out_v.is_null() {
            return Err(Error::null("out"));
        }
        let b = slice(data, len, "data")?;
        let v = seri::decode(b).map_err(|e| Error::new(skc_status::SKC_ERR_DECODE, e.stock_message()))?;
        new_values(v, out_v)
    })
}

/// Writes the number of values in `v` to `*n`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_values_count(v: *const skc_values, n: *mut usize) -> skc_status {
    guard(|| {
        let vals = values(v)?;
        out(n, "n", vals.len())
    })
}

/// Writes the type of value `i` to `*t` (`SKC_ERR_RANGE` past the end).
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_values_type(v: *const skc_values, i: usize, t: *mut skc_type) -> skc_status {
    guard(|| {
        let vals = values(v)?;
        let ty = match at(&vals, i)? {
            Value::Nil => skc_type::SKC_TYPE_NIL,
            Value::Boolean(_) => skc_type::SKC_TYPE_BOOLEAN,
            Value::Integer(_) => skc_type::SKC_TYPE_INTEGER,
            Value::Real(_) => skc_type::SKC_TYPE_REAL,
            Value::String(_) => skc_type::SKC_TYPE_STRING,
            Value::Table(_) => skc_type::SKC_TYPE_TABLE,
            Value::LightUserdata(_) => skc_type::SKC_TYPE_USERDATA,
        };
        out(t, "t", ty)
    })
}

fn type_err(want: &str, got: &Value) -> Error {
    Error::new(skc_status::SKC_ERR_TYPE, format!("value is a {}, not a {want}", got.type_name()))
}

/// Writes boolean value `i` to `*b` (`SKC_ERR_TYPE` if it is not a boolean).
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_values_boolean(v: *const skc_values, i: usize, b: *mut bool) -> skc_status {
    guard(|| {
        let vals = values(v)?;
        match at(&vals, i)? {
            Value::Boolean(x) => out(b, "b", *x),
            o => Err(type_err("boolean", o)),
        }
    })
}

/// Writes integer value `i` to `*n` (`SKC_ERR_TYPE` if it is not a Lua integer; a float with
/// an integral value is accepted, as Lua's `math.tointeger`).
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_values_integer(v: *const skc_values, i: usize, n: *mut i64) -> skc_status {
    guard(|| {
        let vals = values(v)?;
        match at(&vals, i)? {
            Value::Integer(x) => out(n, "n", *x),
            Value::Real(r) if r.fract() == 0.0 && *r >= -9.223372036854776e18 && *r < 9.223372036854776e18 => {
                out(n, "n", *r as i64)
            }
            o => Err(type_err("integer", o)),
        }
    })
}

/// Writes number value `i` (float or integer) to `*d`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_values_real(v: *const skc_values, i: usize, d: *mut f64) -> skc_status {
    guard(|| {
        let vals = values(v)?;
        match at(&vals, i)? {
            Value::Real(x) => out(d, "d", *x),
            Value::Integer(x) => out(d, "d", *x as f64),
            o => Err(type_err("number", o)),
        }
    })
}

/// Gives string value `i`: `*s` points to its bytes and `*len` is their count. The bytes are
/// NOT NUL-terminated (a Lua string may hold any bytes): print with `"%.*s", (int)len, s`.
///
/// Ownership: `*s` is borrowed from `v` and stays valid until `skc_values_free(v)`; never
/// free it. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_values_string(v: *const skc_values, i: usize, s: *mut *const u8, len: *mut usize) -> skc_status {
    guard(|| {
        let vals = values(v)?;
        if s.is_null() || len.is_null() {
            return Err(Error::null("s or len"));
        }
        match at(&vals, i)? {
            Value::String(x) => {
                // The bytes live in the Arc the registry holds until skc_values_free.
                out(len, "len", x.len())?;
                out(s, "s", x.as_ptr())
            }
            o => Err(type_err("string", o)),
        }
    })
}

fn table_part(v: *const skc_values, i: usize, outp: *mut *mut skc_values, hash: bool) -> skc_status {
    handle::clear(outp);
    guard(|| {
        let vals = values(v)?;
        if outp.is_null() {
            return Err(Error::null("out"));
        }
        match at(&vals, i)? {
            Value::Table(t) if hash => {
                let flat = t.hash.iter().flat_map(|(k, x)| [k.clone(), x.clone()]).collect();
                new_values(flat, outp)
            }
            Value::Table(t) => new_values(t.array.clone(), outp),
            o => Err(type_err("table", o)),
        }
    })
}

/// Gives the array part (`t[1]`, `t[2]`, ...) of table value `i` as a new value list.
///
/// Ownership: the caller owns `*out` (a copy) and frees it with `skc_values_free`.
/// Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_values_array(v: *const skc_values, i: usize, out: *mut *mut skc_values) -> skc_status {
    table_part(v, i, out, false)
}

/// Gives the hash part of table value `i` as a new value list `key1, value1, key2, value2, ...`
/// in wire order.
///
/// Ownership: the caller owns `*out` (a copy) and frees it with `skc_values_free`.
/// Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_values_hash(v: *const skc_values, i: usize, out: *mut *mut skc_values) -> skc_status {
    table_part(v, i, out, true)
}

/// Frees a value list; pointers borrowed from it (strings) become invalid.
///
/// Ownership: frees `v`; any later use (a second free included) gives `SKC_ERR_HANDLE`.
/// Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_values_free(v: *mut skc_values) -> skc_status {
    guard(|| {
        remove("skc_values", v as usize, |o| match o {
            Obj::Values(x) => Ok(x),
            o => Err(o),
        })?;
        Ok(())
    })
}

#[allow(dead_code)]
fn _unused(_: *const c_char) -> Res<&'static str> {
    cstr(std::ptr::null(), "x")
}
