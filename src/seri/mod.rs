//! skynet.pack serialization codec (issue 4): the bytes `skynet.pack(...)` makes and
//! `skynet.unpack` reads, as pure Rust. No Lua, no I/O, no global state.
//!
//! ```
//! use skynet_cluster::seri::{decode, encode, Table, Value};
//! let msg = encode(&["echo".into(), 42.into(), Value::Table(Table::from_array(vec![1.into()]))]).unwrap();
//! assert_eq!(msg, b"\x24echo\x0a\x2a\x0e\x0a\x01\x00");
//! assert_eq!(decode(&msg).unwrap()[1], Value::Integer(42));
//! ```
//!
//! # Format (lua-seri.c)
//!
//! A message is a sequence of values. Each value starts with a type byte: the low 3 bits are the
//! type, the high 5 bits a "cookie". All multi-byte numbers are little-endian.
//!
//! | type | cookie | after the type byte |
//! |---|---|---|
//! | 0 nil | any | nothing |
//! | 1 boolean | 0 false, else true | nothing |
//! | 2 number | 0 | nothing (integer 0) |
//! | | 1 / 2 | `u8` / `u16` (unsigned) |
//! | | 4 / 6 | `i32` / `i64` |
//! | | 8 | `f64` |
//! | 3 light userdata | any | the pointer, host width (8 bytes on 64-bit), host byte order |
//! | 4 short string | length 0..31 | the bytes |
//! | 5 long string | 2 / 4 | `u16` / `u32` length, then the bytes |
//! | 6 table | array size 0..30, or 31 | (if 31: a packed integer, the array size), the array values, then key/value pairs, then a nil |
//!
//! The encoder always picks the smallest form, exactly as lua-seri.c does, so for the same values
//! it writes the same bytes. The decoder also accepts the non-minimal forms stock accepts (a small
//! integer in 8 bytes, an array size of 3 after cookie 31, booleans with any non-zero cookie, ...).
//!
//! # Hash part order
//!
//! lua-seri.c writes a table's array part `1..rawlen(t)` in index order, then every other key in
//! Lua `next()` order, which depends on the Lua version, the hash layout and the insertion history.
//! So for a table with **two or more** keys outside its array part, stock's bytes are not
//! reproducible from the table's contents alone. What we guarantee:
//!
//! - [`encode`] writes [`Table::hash`] in vector order, and [`decode`] fills it in stream order, so
//!   `encode(decode(b)) == b` for any `b` stock produced, and `decode(encode(v)) == v` for any `v`
//!   we accept. Give the pairs in the order you want on the wire.
//! - With at most one hash key, our bytes equal stock's for the same Lua table.
//! - Otherwise, the bytes decode in stock skynet to the same Lua table.
//!
//! The value model is structural, not a Lua table: [`encode`] writes exactly what it is given (it does
//! not move integer keys into the array part, nor turn a `2.0` key into `2`), and [`decode`] keeps
//! exactly what the stream holds (duplicate keys, hash keys that shadow array slots, nil values).
//! [`Table::get`] looks a key up with Lua's rules (later pairs win, as Lua's `rawset` would).
//!
//! # Limits (matching lua-seri.c)
//!
//! - [`MAX_DEPTH`] (stock `MAX_DEPTH`, 32): `pack_one` refuses any value inside more than 32 tables,
//!   so a top-level table may hold 32 levels of nested tables below it, the innermost empty
//!   ([`EncodeError::TooDeep`], stock text `serialize can't pack too depth table`).
//! - [`MAX_DECODE_DEPTH`] (33): stock's unpack has no depth check of its own (it recurses until the
//!   Lua or C stack gives out); we refuse tables nested deeper than anything `skynet.pack` can
//!   produce, which bounds our recursion ([`DecodeError::TooDeep`]).
//! - [`MAX_COOKIE`] (stock `MAX_COOKIE`, 32): strings shorter than this use the short form; arrays of
//!   `MAX_COOKIE - 1` or more values store their size as a packed integer.
//! - [`MAX_STRING_LEN`], [`MAX_ARRAY_LEN`], [`MAX_PACK_SIZE`] (`i32::MAX`): stock keeps these lengths in
//!   C `int`s and breaks beyond them; we refuse to encode past them.
//! - An array size is converted to a C `int` on decode as stock does (an 8-byte size wraps to 32
//!   bits); a negative result is an error ([`DecodeError::NegativeArraySize`]).
//! - A NaN hash key is an error on both sides (stock's `lua_rawset` raises "index is NaN").
//!
//! Decoding untrusted bytes is safe: every malformed input gives a [`DecodeError`], never a panic, and
//! nothing is allocated ahead of the bytes that back it (a string is copied only once its bytes are
//! known to be there; a table reserves at most a small fixed number of slots in advance).

mod decode;
mod encode;
mod error;
mod value;

pub use decode::{decode, decode_integer_prefix, decode_str_prefix};
pub use encode::{encode, encode_integer_into, encode_into, encode_str_into, encoded_len};
pub use error::{DecodeError, EncodeError, Position};
pub use value::{Table, Value};

/// Type tag (low 3 bits of a type byte): nil.
pub const TYPE_NIL: u8 = 0;
/// Type tag: boolean (cookie 0 = false, anything else true).
pub const TYPE_BOOLEAN: u8 = 1;
/// Type tag: number (cookie selects the width, see `NUMBER_*`).
pub const TYPE_NUMBER: u8 = 2;
/// Type tag: light userdata (a raw pointer).
pub const TYPE_USERDATA: u8 = 3;
/// Type tag: string of 0..31 bytes, length in the cookie.
pub const TYPE_SHORT_STRING: u8 = 4;
/// Type tag: string with a u16 (cookie 2) or u32 (cookie 4) length.
pub const TYPE_LONG_STRING: u8 = 5;
/// Type tag: table.
pub const TYPE_TABLE: u8 = 6;

/// Number cookie: the integer 0, nothing follows.
pub const NUMBER_ZERO: u8 = 0;
/// Number cookie: unsigned 8-bit integer follows.
pub const NUMBER_BYTE: u8 = 1;
/// Number cookie: unsigned 16-bit integer follows.
pub const NUMBER_WORD: u8 = 2;
/// Number cookie: signed 32-bit integer follows.
pub const NUMBER_DWORD: u8 = 4;
/// Number cookie: signed 64-bit integer follows.
pub const NUMBER_QWORD: u8 = 6;
/// Number cookie: 64-bit float follows.
pub const NUMBER_REAL: u8 = 8;

/// lua-seri.c `MAX_COOKIE`: one more than the largest value the 5-bit cookie of a short string or
/// table uses for a length.
pub const MAX_COOKIE: u8 = 32;
/// lua-seri.c `MAX_DEPTH`: how many tables a packed value may sit inside.
pub const MAX_DEPTH: usize = 32;
/// The deepest table nesting [`decode`] accepts: what `skynet.pack` can emit under [`MAX_DEPTH`]
/// (a top-level table plus 32 nested levels).
pub const MAX_DECODE_DEPTH: usize = MAX_DEPTH + 1;
/// Longest string [`encode`] accepts (stock passes string lengths as a C `int`).
pub const MAX_STRING_LEN: usize = i32::MAX as usize;
/// Longest array part [`encode`] accepts (stock's `lua_rawlen` result is kept in a C `int`).
pub const MAX_ARRAY_LEN: usize = i32::MAX as usize;
/// Largest message [`encode`] produces (stock's `write_block` length is a C `int`).
pub const MAX_PACK_SIZE: usize = i32::MAX as usize;
/// Bytes of a light userdata in the stream: the host's pointer width, as stock writes `void *`.
pub const POINTER_SIZE: usize = std::mem::size_of::<usize>();

/// A type byte: type tag in the low 3 bits, cookie in the high 5.
#[inline]
pub const fn combine(ty: u8, cookie: u8) -> u8 {
    ty | (cookie << 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(values: &[Value]) -> Vec<u8> {
        let b = encode(values).unwrap();
        assert_eq!(encoded_len(values), Ok(b.len()));
        assert_eq!(decode(&b).unwrap(), values);
        b
    }

    #[test]
    fn integers_pick_the_smallest_form() {
        assert_eq!(rt(&[0.into()]), [0x02]);
        assert_eq!(rt(&[1.into()]), [0x0a, 1]);
        assert_eq!(rt(&[255.into()]), [0x0a, 0xff]);
        assert_eq!(rt(&[256.into()]), [0x12, 0, 1]);
        assert_eq!(rt(&[65536.into()]), [0x22, 0, 0, 1, 0]);
        assert_eq!(rt(&[(-1).into()]), [0x22, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(rt(&[Value::Integer(1 << 31)]), [0x32, 0, 0, 0, 0x80, 0, 0, 0, 0]);
    }

    #[test]
    fn tables_and_limits() {
        let t = Table { array: vec![1.into(), "a".into()], hash: vec![("k".into(), true.into())] };
        assert_eq!(rt(&[t.into()]), b"\x16\x0a\x01\x0ca\x0ck\x09\x00");
        let big = Table::from_array((0..31).map(Value::from).collect());
        assert_eq!(&rt(&[big.into()])[..3], &[0xfe, 0x0a, 31]);

        // 33 nested tables, innermost empty: accepted; one more level, or content inside: refused.
        let nest = |n: usize, inner: Table| {
            let mut v = Value::Table(inner);
            for _ in 1..n {
                v = Value::Table(Table::from_array(vec![v]));
            }
            v
        };
        rt(&[nest(33, Table::new())]);
        assert_eq!(encode(&[nest(34, Table::new())]), Err(EncodeError::TooDeep { depth: 33 }));
        assert!(encode(&[nest(33, Table::from_array(vec![Value::Nil]))]).is_err());
        let deep = [&[0x0eu8; 34][..], &[0x06], &[0u8; 34][..]].concat();
        assert!(matches!(decode(&deep), Err(DecodeError::TooDeep { .. })));
        let ok = [&[0x0eu8; 32][..], &[0x06], &[0u8; 33][..]].concat();
        assert!(decode(&ok).is_ok());

        let bad = Table::from_pairs(vec![(Value::Nil, 1.into())]);
        assert_eq!(encode(&[bad.into()]), Err(EncodeError::NilKey));
        let mut out = vec![7];
        let bad = Table::from_pairs(vec![(1.into(), 1.into()), (f64::NAN.into(), 1.into())]);
        assert_eq!(encode_into(&mut out, &[1.into(), bad.into()]), Err(EncodeError::NanKey));
        assert_eq!(out, [7]);
    }

    #[test]
    fn decode_errors_report_stock_positions() {
        let e = decode(&[0x22, 0x78]).unwrap_err();
        assert_eq!(e.remaining(), 1);
        assert_eq!(e.stock_message(), "Invalid serialize stream 1");
        assert!(matches!(decode(&[0x07]), Err(DecodeError::InvalidType { .. })));
        assert!(matches!(decode(&[0x2a]), Err(DecodeError::InvalidNumberCookie { cookie: 5, .. })));
        assert!(matches!(decode(&[0x1d]), Err(DecodeError::InvalidStringCookie { cookie: 3, .. })));
        // Absurd sizes fail on the missing bytes, without allocating for them.
        assert!(matches!(decode(&[0x25, 0xff, 0xff, 0xff, 0xff]), Err(DecodeError::Truncated { .. })));
        assert!(matches!(decode(&[0xfe, 0x22, 0xff, 0xff, 0xff, 0x7f]), Err(DecodeError::Truncated { .. })));
        assert!(matches!(decode(&[0xfe, 0x22, 0xff, 0xff, 0xff, 0xff]), Err(DecodeError::NegativeArraySize { .. })));
        assert!(matches!(decode(&[0xfe, 0x42]), Err(DecodeError::InvalidArraySize { .. })));
        // An 8-byte array size wraps to a C int like stock: 2^32 + 1 -> 1.
        let v = decode(&[0xfe, 0x32, 1, 0, 0, 0, 1, 0, 0, 0, 0x0a, 9, 0]).unwrap();
        assert_eq!(v, [Value::Table(Table::from_array(vec![9.into()]))]);
        // Non-minimal forms stock accepts.
        assert_eq!(decode(&[0x11, 0x08]).unwrap(), [Value::Boolean(true), Value::Nil]);
        let nan_key = [0x06, 0x42, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 0x0a, 1, 0];
        assert!(matches!(decode(&nan_key), Err(DecodeError::NanKey { .. })));
    }

    #[test]
    fn fast_paths_match_the_general_path() {
        for i in [0i64, 1, -1, 300, 1 << 40, i64::MIN] {
            let mut a = Vec::new();
            encode_integer_into(&mut a, i);
            let mut b = Vec::new();
            encode_into(&mut b, &[Value::Integer(i), Value::Nil]).unwrap();
            assert_eq!(a, b[..b.len() - 1]);
        }
        for n in [0usize, 31, 32, 65535, 65536] {
            let s = vec![b'x'; n];
            let mut a = Vec::new();
            encode_str_into(&mut a, &s).unwrap();
            assert_eq!(a, rt(&[s.into()]));
        }
    }

    #[test]
    fn prefix_readers_read_the_first_value() {
        let mut v = Vec::new();
        for x in [0i64, 1, 255, 256, 65535, 65536, -1, i32::MAX as i64, i64::MIN, 1 << 40] {
            v.clear();
            encode_integer_into(&mut v, x);
            assert_eq!(decode_integer_prefix(&v), Some((x, v.len())));
            v.push(0x02);
            assert_eq!(decode_integer_prefix(&v), Some((x, v.len() - 1)), "what follows is left alone");
            v.pop();
            assert_eq!(decode_integer_prefix(&v[..v.len() - 1]), None, "truncated");
            assert_eq!(decode_str_prefix(&v), None);
        }
        for n in [0usize, 31, 32, 65535, 65536] {
            v.clear();
            let s = vec![7u8; n];
            encode_str_into(&mut v, &s).unwrap();
            assert_eq!(decode_str_prefix(&v), Some((&s[..], v.len())));
            assert_eq!(decode_integer_prefix(&v), None);
            if !v.is_empty() {
                assert_eq!(decode_str_prefix(&v[..v.len() - 1]), None, "truncated");
            }
        }
        // Non-minimal forms stock reads: a small integer in 8 bytes, a short string in the long form.
        assert_eq!(decode_integer_prefix(&[0x32, 5, 0, 0, 0, 0, 0, 0, 0]), Some((5, 9)));
        assert_eq!(decode_str_prefix(&[0x15, 1, 0, b'x']), Some((&b"x"[..], 4)));
        // Not integers or strings: a real, a bad cookie, nothing.
        assert_eq!(decode_integer_prefix(&encode(&[1.5.into()]).unwrap()), None);
        assert_eq!(decode_integer_prefix(&[0x2a]), None);
        assert_eq!(decode_str_prefix(&[0x1d, 0, 0]), None);
        assert_eq!(decode_str_prefix(&[]), None);
        assert_eq!(decode_integer_prefix(&[]), None);
    }

    #[test]
    fn lua_lookup() {
        let t = Table {
            array: vec!["a".into(), "b".into()],
            hash: vec![("x".into(), 1.into()), (2.into(), "c".into()), ("x".into(), 2.into())],
        };
        assert_eq!(t.get(&1.into()), Some(&"a".into()));
        assert_eq!(t.get(&Value::Real(2.0)), Some(&"c".into()));
        assert_eq!(t.get_str("x"), Some(&2.into()));
        assert_eq!(t.get(&3.into()), None);
    }
}
