//! Decoder: skynet.pack bytes to values. Accepts everything lua-seri.c's unpack accepts (within
//! [`MAX_DECODE_DEPTH`]), rejects with a typed error everything it rejects.

use super::{
    DecodeError, Position, Table, Value, MAX_COOKIE, MAX_DECODE_DEPTH, NUMBER_BYTE, NUMBER_DWORD, NUMBER_QWORD,
    NUMBER_REAL, NUMBER_WORD, NUMBER_ZERO, POINTER_SIZE, TYPE_BOOLEAN, TYPE_LONG_STRING, TYPE_NIL, TYPE_NUMBER,
    TYPE_SHORT_STRING, TYPE_TABLE, TYPE_USERDATA,
};

/// At most this many elements are reserved ahead for a table's array part, whatever size it
/// declares; past that the vector grows only as values are actually read. Bounds what a hostile
/// header can make us allocate before the bytes are there (even across [`MAX_DECODE_DEPTH`]
/// nested tables that all declare huge sizes).
const PREALLOC_LIMIT: usize = 256;

/// Unpack every value of one message, like `skynet.unpack(msg)`. Empty input gives no values.
pub fn decode(bytes: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    // Every value takes at least one byte; a short message holds few values.
    let mut values = Vec::with_capacity(bytes.len().min(8));
    while let Some(&byte) = bytes.get(r.pos) {
        r.pos += 1;
        values.push(r.value(byte, 0)?);
    }
    Ok(values)
}

/// Reads one packed string at the start of `bytes` (the first value of a message, say):
/// `(string, bytes used)`, or `None` when the bytes there are not a whole string. Borrows,
/// never allocates.
pub fn decode_str_prefix(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let byte = r.type_byte().ok()?;
    let len = match byte & 7 {
        TYPE_SHORT_STRING => usize::from(byte >> 3),
        TYPE_LONG_STRING => r.long_string_len(byte >> 3).ok()?,
        _ => return None,
    };
    let s = r.take(len).ok()?;
    Some((s, r.pos))
}

/// Reads one packed integer at the start of `bytes`: `(value, bytes used)`, or `None` when
/// the bytes there are not a whole integer (a real is not one).
pub fn decode_integer_prefix(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let byte = r.type_byte().ok()?;
    if byte & 7 != TYPE_NUMBER {
        return None;
    }
    let v = r.integer(byte >> 3).ok()?;
    Some((v, r.pos))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn at(&self) -> Position {
        Position { offset: self.pos, remaining: self.buf.len() - self.pos }
    }

    /// Take `n` bytes, or fail (consuming nothing, like `rb_read`).
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let buf: &'a [u8] = self.buf;
        match buf.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(DecodeError::Truncated { at: self.at(), needed: n }),
        }
    }

    #[inline]
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    fn type_byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take_array::<1>()?[0])
    }

    /// Integer with the given cookie (lua-seri.c `get_integer`). The type byte was consumed.
    fn integer(&mut self, cookie: u8) -> Result<i64, DecodeError> {
        Ok(match cookie {
            NUMBER_ZERO => 0,
            NUMBER_BYTE => i64::from(self.take_array::<1>()?[0]),
            NUMBER_WORD => i64::from(u16::from_le_bytes(self.take_array()?)),
            NUMBER_DWORD => i64::from(i32::from_le_bytes(self.take_array()?)),
            NUMBER_QWORD => i64::from_le_bytes(self.take_array()?),
            _ => return Err(DecodeError::InvalidNumberCookie { at: self.at(), cookie }),
        })
    }

    /// The length of a long string with the given cookie (the type byte was consumed).
    #[inline]
    fn long_string_len(&mut self, cookie: u8) -> Result<usize, DecodeError> {
        Ok(match cookie {
            2 => usize::from(u16::from_le_bytes(self.take_array()?)),
            4 => u32::from_le_bytes(self.take_array()?) as usize,
            _ => return Err(DecodeError::InvalidStringCookie { at: self.at(), cookie }),
        })
    }

    fn string(&mut self, len: usize) -> Result<Value, DecodeError> {
        Ok(Value::String(self.take(len)?.to_vec()))
    }

    /// The value whose type byte (already consumed) is `byte`. `depth` = tables around it.
    fn value(&mut self, byte: u8, depth: usize) -> Result<Value, DecodeError> {
        let cookie = byte >> 3;
        Ok(match byte & 7 {
            TYPE_NIL => Value::Nil,
            TYPE_BOOLEAN => Value::Boolean(cookie != 0),
            TYPE_NUMBER => {
                if cookie == NUMBER_REAL {
                    Value::Real(f64::from_le_bytes(self.take_array()?))
                } else {
                    Value::Integer(self.integer(cookie)?)
                }
            }
            TYPE_USERDATA => Value::LightUserdata(usize::from_ne_bytes(self.take_array::<POINTER_SIZE>()?)),
            TYPE_SHORT_STRING => self.string(usize::from(cookie))?,
            TYPE_LONG_STRING => {
                let len = self.long_string_len(cookie)?;
                self.string(len)?
            }
            TYPE_TABLE => Value::Table(self.table(cookie, depth + 1)?),
            _ => return Err(DecodeError::InvalidType { at: self.at(), byte }),
        })
    }

    /// A table whose type byte (cookie = array size or 31) was consumed; `depth` counts this table.
    fn table(&mut self, cookie: u8, depth: usize) -> Result<Table, DecodeError> {
        if depth > MAX_DECODE_DEPTH {
            return Err(DecodeError::TooDeep { at: self.at(), depth });
        }
        let n = if cookie == MAX_COOKIE - 1 {
            let b = self.type_byte()?;
            let c = b >> 3;
            if b & 7 != TYPE_NUMBER || c == NUMBER_REAL {
                return Err(DecodeError::InvalidArraySize { at: self.at(), byte: b });
            }
            let size = self.integer(c)?;
            // lua-seri.c stores the size in a C `int`: wrap to 32 bits as it does.
            let size32 = size as i32;
            if size32 < 0 {
                return Err(DecodeError::NegativeArraySize { at: self.at(), size });
            }
            size32 as usize
        } else {
            usize::from(cookie)
        };
        let remaining = self.buf.len() - self.pos;
        let mut array = Vec::with_capacity(n.min(remaining).min(PREALLOC_LIMIT));
        for _ in 0..n {
            let b = self.type_byte()?;
            array.push(self.value(b, depth)?);
        }
        let mut hash = Vec::new();
        loop {
            let b = self.type_byte()?;
            let key = self.value(b, depth)?;
            if key.is_nil() {
                break;
            }
            let b = self.type_byte()?;
            let value = self.value(b, depth)?;
            if matches!(key, Value::Real(f) if f.is_nan()) {
                return Err(DecodeError::NanKey { at: self.at() });
            }
            hash.push((key, value));
        }
        Ok(Table { array, hash })
    }
}
