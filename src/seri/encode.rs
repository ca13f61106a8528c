//! Encoder: values to skynet.pack bytes.

use super::{
    combine, EncodeError, Table, Value, MAX_ARRAY_LEN, MAX_COOKIE, MAX_DEPTH, MAX_PACK_SIZE, MAX_STRING_LEN,
    NUMBER_BYTE, NUMBER_DWORD, NUMBER_QWORD, NUMBER_REAL, NUMBER_WORD, NUMBER_ZERO, POINTER_SIZE, TYPE_BOOLEAN,
    TYPE_LONG_STRING, TYPE_NIL, TYPE_NUMBER, TYPE_SHORT_STRING, TYPE_TABLE, TYPE_USERDATA,
};

/// Pack `values` as one message, like `skynet.pack(v1, v2, ...)`.
pub fn encode(values: &[Value]) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(&mut out, values)?;
    Ok(out)
}

/// Append the packed bytes of `values` to `out`. On error `out` is truncated back to the length it
/// had at the call, so nothing partial is left behind.
///
/// A single integer or a single string takes a direct path with one reservation and no other
/// allocation.
pub fn encode_into(out: &mut Vec<u8>, values: &[Value]) -> Result<(), EncodeError> {
    match values {
        [Value::Integer(i)] => {
            encode_integer_into(out, *i);
            return Ok(());
        }
        [Value::String(s)] => return encode_str_into(out, s),
        _ => {}
    }
    let start = out.len();
    let result = values.iter().try_for_each(|v| write_value(out, v, 0)).and_then(|()| {
        let len = out.len() - start;
        if len > MAX_PACK_SIZE {
            Err(EncodeError::MessageTooLarge { len })
        } else {
            Ok(())
        }
    });
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Append one integer, packed alone (the same bytes as `encode(&[Value::Integer(v)])`).
/// Never fails; reserves at most 9 bytes.
#[inline]
pub fn encode_integer_into(out: &mut Vec<u8>, v: i64) {
    write_integer(out, v);
}

/// Append one string, packed alone (the same bytes as `encode(&[Value::String(s.to_vec())])`),
/// without building a [`Value`]. Fails only for strings over [`MAX_STRING_LEN`] (or whose message
/// would exceed [`MAX_PACK_SIZE`] with its 5-byte header).
#[inline]
pub fn encode_str_into(out: &mut Vec<u8>, s: &[u8]) -> Result<(), EncodeError> {
    if s.len() > MAX_STRING_LEN {
        return Err(EncodeError::StringTooLong { len: s.len() });
    }
    if s.len() > MAX_PACK_SIZE - 5 {
        return Err(EncodeError::MessageTooLarge { len: s.len() + 5 });
    }
    write_string(out, s);
    Ok(())
}

/// The smallest encoding, as lua-seri.c picks it: 0 is a bare type byte; otherwise 1 byte for
/// 1..=255, 2 for 256..=65535, 4 (signed) for the rest of the `int32` range, 8 beyond.
#[inline]
fn write_integer(out: &mut Vec<u8>, v: i64) {
    if v == 0 {
        out.push(combine(TYPE_NUMBER, NUMBER_ZERO));
    } else if v != i64::from(v as i32) {
        out.reserve(9);
        out.push(combine(TYPE_NUMBER, NUMBER_QWORD));
        out.extend_from_slice(&v.to_le_bytes());
    } else if !(0..0x10000).contains(&v) {
        out.reserve(5);
        out.push(combine(TYPE_NUMBER, NUMBER_DWORD));
        out.extend_from_slice(&(v as i32).to_le_bytes());
    } else if v < 0x100 {
        out.extend_from_slice(&[combine(TYPE_NUMBER, NUMBER_BYTE), v as u8]);
    } else {
        let w = (v as u16).to_le_bytes();
        out.extend_from_slice(&[combine(TYPE_NUMBER, NUMBER_WORD), w[0], w[1]]);
    }
}

#[inline]
fn write_real(out: &mut Vec<u8>, v: f64) {
    out.reserve(9);
    out.push(combine(TYPE_NUMBER, NUMBER_REAL));
    out.extend_from_slice(&v.to_le_bytes());
}

/// Short form (type byte carries the length) below [`MAX_COOKIE`] bytes, then a u16 length below
/// 64 KiB, else a u32 length. The caller checked `s.len() <= MAX_STRING_LEN`.
#[inline]
fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < MAX_COOKIE as usize {
        out.reserve(1 + len);
        out.push(combine(TYPE_SHORT_STRING, len as u8));
    } else if len < 0x10000 {
        out.reserve(3 + len);
        out.push(combine(TYPE_LONG_STRING, 2));
        out.extend_from_slice(&(len as u16).to_le_bytes());
    } else {
        out.reserve(5 + len);
        out.push(combine(TYPE_LONG_STRING, 4));
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
}

/// `depth` is the number of tables around `v` (0 for a top-level argument), which is the `depth`
/// argument of lua-seri.c's `pack_one` for the same value.
fn write_value(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), EncodeError> {
    if depth > MAX_DEPTH {
        return Err(EncodeError::TooDeep { depth });
    }
    match v {
        Value::Nil => out.push(combine(TYPE_NIL, 0)),
        Value::Boolean(b) => out.push(combine(TYPE_BOOLEAN, u8::from(*b))),
        Value::Integer(i) => write_integer(out, *i),
        Value::Real(f) => write_real(out, *f),
        Value::String(s) => {
            if s.len() > MAX_STRING_LEN {
                return Err(EncodeError::StringTooLong { len: s.len() });
            }
            write_string(out, s);
        }
        Value::LightUserdata(p) => {
            out.push(combine(TYPE_USERDATA, 0));
            out.extend_from_slice(&p.to_ne_bytes());
        }
        Value::Table(t) => write_table(out, t, depth + 1)?,
    }
    Ok(())
}

/// Array size (in the cookie below 31, else cookie 31 and a packed integer), the array values,
/// the hash pairs in vector order, and a nil to end the table.
fn write_table(out: &mut Vec<u8>, t: &Table, depth: usize) -> Result<(), EncodeError> {
    let n = t.array.len();
    if n > MAX_ARRAY_LEN {
        return Err(EncodeError::ArrayTooLong { len: n });
    }
    if n >= (MAX_COOKIE - 1) as usize {
        out.push(combine(TYPE_TABLE, MAX_COOKIE - 1));
        write_integer(out, n as i64);
    } else {
        out.push(combine(TYPE_TABLE, n as u8));
    }
    for v in &t.array {
        write_value(out, v, depth)?;
    }
    for (k, v) in &t.hash {
        match k {
            Value::Nil => return Err(EncodeError::NilKey),
            Value::Real(f) if f.is_nan() => return Err(EncodeError::NanKey),
            _ => {}
        }
        write_value(out, k, depth)?;
        write_value(out, v, depth)?;
    }
    out.push(combine(TYPE_NIL, 0));
    Ok(())
}

/// The exact number of bytes [`encode`] would produce for `values`, or the error it would give,
/// without writing anything. Lets a caller allocate the output once (for instance with a host's
/// `malloc`) before encoding.
pub fn encoded_len(values: &[Value]) -> Result<usize, EncodeError> {
    let mut len = 0usize;
    for v in values {
        len = len.saturating_add(value_len(v, 0)?);
    }
    if len > MAX_PACK_SIZE {
        return Err(EncodeError::MessageTooLarge { len });
    }
    Ok(len)
}

fn integer_len(v: i64) -> usize {
    if v == 0 {
        1
    } else if v != i64::from(v as i32) {
        9
    } else if !(0..0x10000).contains(&v) {
        5
    } else if v < 0x100 {
        2
    } else {
        3
    }
}

fn value_len(v: &Value, depth: usize) -> Result<usize, EncodeError> {
    if depth > MAX_DEPTH {
        return Err(EncodeError::TooDeep { depth });
    }
    Ok(match v {
        Value::Nil | Value::Boolean(_) => 1,
        Value::Integer(i) => integer_len(*i),
        Value::Real(_) => 9,
        Value::String(s) => {
            let len = s.len();
            if len > MAX_STRING_LEN {
                return Err(EncodeError::StringTooLong { len });
            }
            len + if len < MAX_COOKIE as usize {
                1
            } else if len < 0x10000 {
                3
            } else {
                5
            }
        }
        Value::LightUserdata(_) => 1 + POINTER_SIZE,
        Value::Table(t) => {
            let depth = depth + 1;
            let n = t.array.len();
            if n > MAX_ARRAY_LEN {
                return Err(EncodeError::ArrayTooLong { len: n });
            }
            // Type byte, optional packed size, then the closing nil.
            let mut len = 2 + if n >= (MAX_COOKIE - 1) as usize { integer_len(n as i64) } else { 0 };
            for v in &t.array {
                len = len.saturating_add(value_len(v, depth)?);
            }
            for (k, v) in &t.hash {
                match k {
                    Value::Nil => return Err(EncodeError::NilKey),
                    Value::Real(f) if f.is_nan() => return Err(EncodeError::NanKey),
                    _ => {}
                }
                len = len.saturating_add(value_len(k, depth)?).saturating_add(value_len(v, depth)?);
            }
            len
        }
    })
}
