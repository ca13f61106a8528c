//! Typed errors of the codec.

use std::fmt;

/// Why [`encode`](super::encode) refused a value. Nothing is left in the output buffer on error
/// ([`encode_into`](super::encode_into) truncates it back to its length at the call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A value sits inside more than [`MAX_DEPTH`](super::MAX_DEPTH) tables. Stock raises
    /// `serialize can't pack too depth table` for the same values. `depth` is the nesting level of
    /// the value that was refused (top-level arguments are level 0).
    TooDeep { depth: usize },
    /// A hash key is `nil`: it would end the table early in the stream (Lua cannot hold one).
    NilKey,
    /// A hash key is a NaN float: `skynet.unpack` would raise on it (Lua cannot hold one).
    NanKey,
    /// A string longer than [`MAX_STRING_LEN`](super::MAX_STRING_LEN) bytes (stock keeps string
    /// lengths in a C `int`).
    StringTooLong { len: usize },
    /// An array part longer than [`MAX_ARRAY_LEN`](super::MAX_ARRAY_LEN).
    ArrayTooLong { len: usize },
    /// The whole message would exceed [`MAX_PACK_SIZE`](super::MAX_PACK_SIZE) bytes (stock keeps the
    /// packed length in a C `int`).
    MessageTooLarge { len: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Same text as lua-seri.c, so a Lua-facing wrapper can pass it through unchanged.
            EncodeError::TooDeep { .. } => f.write_str("serialize can't pack too depth table"),
            EncodeError::NilKey => f.write_str("serialize can't pack a table key that is nil"),
            EncodeError::NanKey => f.write_str("serialize can't pack a table key that is NaN"),
            EncodeError::StringTooLong { len } => {
                write!(f, "serialize can't pack a string of {len} bytes (too long)")
            }
            EncodeError::ArrayTooLong { len } => {
                write!(f, "serialize can't pack an array part of {len} values (too long)")
            }
            EncodeError::MessageTooLarge { len } => {
                write!(f, "serialize can't pack a message of {len} bytes (too large)")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Where in the input a decode error was found.
///
/// `offset` is the read position when decoding stopped, counted the way lua-seri.c counts it (bytes
/// it had consumed), and `remaining` is `input.len() - offset`: the number stock prints in
/// `Invalid serialize stream <remaining> (line:N)` for the same input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub offset: usize,
    pub remaining: usize,
}

/// Why [`decode`](super::decode) refused its input. Every malformed input gives one of these; the
/// decoder never panics and never allocates more than a small bounded amount ahead of the bytes it
/// has actually read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ends inside a value: `needed` more bytes were required at `at`.
    Truncated { at: Position, needed: usize },
    /// Type tag 7 (the low 3 bits of a type byte), which the format does not define.
    InvalidType { at: Position, byte: u8 },
    /// A number whose cookie (high 5 bits) is not 0, 1, 2, 4, 6 (integers) or 8 (real).
    InvalidNumberCookie { at: Position, cookie: u8 },
    /// A long string whose cookie is not 2 (u16 length) or 4 (u32 length).
    InvalidStringCookie { at: Position, cookie: u8 },
    /// A table with cookie 31 must be followed by an integer (its array size); this byte is not one.
    InvalidArraySize { at: Position, byte: u8 },
    /// A table whose array size, after stock's conversion to a C `int`, is negative.
    NegativeArraySize { at: Position, size: i64 },
    /// Tables nested deeper than [`MAX_DECODE_DEPTH`](super::MAX_DECODE_DEPTH).
    TooDeep { at: Position, depth: usize },
    /// A hash key that is a NaN float (stock's `lua_rawset` raises "index is NaN").
    NanKey { at: Position },
}

impl DecodeError {
    /// Where the error was found.
    pub fn position(&self) -> Position {
        match *self {
            DecodeError::Truncated { at, .. }
            | DecodeError::InvalidType { at, .. }
            | DecodeError::InvalidNumberCookie { at, .. }
            | DecodeError::InvalidStringCookie { at, .. }
            | DecodeError::InvalidArraySize { at, .. }
            | DecodeError::NegativeArraySize { at, .. }
            | DecodeError::TooDeep { at, .. }
            | DecodeError::NanKey { at } => at,
        }
    }

    /// Byte offset at which decoding stopped.
    pub fn offset(&self) -> usize {
        self.position().offset
    }

    /// Bytes left after [`offset`](Self::offset) (what stock prints in its error).
    pub fn remaining(&self) -> usize {
        self.position().remaining
    }

    /// Stock's message for this input, without its `(line:N)` suffix:
    /// `Invalid serialize stream <remaining>`. (NaN keys and nesting depth have no such message
    /// in stock; the same format is used for them.)
    pub fn stock_message(&self) -> String {
        format!("Invalid serialize stream {}", self.remaining())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.position();
        write!(f, "Invalid serialize stream {} (at byte {}): ", at.remaining, at.offset)?;
        match self {
            DecodeError::Truncated { needed, .. } => {
                write!(f, "truncated, {needed} more bytes needed")
            }
            DecodeError::InvalidType { byte, .. } => write!(f, "invalid type byte {byte:#04x}"),
            DecodeError::InvalidNumberCookie { cookie, .. } => {
                write!(f, "invalid number cookie {cookie}")
            }
            DecodeError::InvalidStringCookie { cookie, .. } => {
                write!(f, "invalid long string cookie {cookie}")
            }
            DecodeError::InvalidArraySize { byte, .. } => {
                write!(f, "table array size is not an integer (type byte {byte:#04x})")
            }
            DecodeError::NegativeArraySize { size, .. } => {
                write!(f, "table array size {size} is negative")
            }
            DecodeError::TooDeep { depth, .. } => {
                write!(f, "tables nested {depth} deep (more than {})", super::MAX_DECODE_DEPTH)
            }
            DecodeError::NanKey { .. } => f.write_str("table key is NaN"),
        }
    }
}

impl std::error::Error for DecodeError {}
