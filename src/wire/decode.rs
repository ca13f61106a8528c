//! Frame decoders: borrowed views into one frame body, no allocation.
//!
//! The checks and their error texts are those of stock `lua-cluster.c`, because the Lua
//! module surfaces them verbatim; the engine uses the same checks so that what one node
//! accepts, the other does too.

use super::{read_u32_le, req_type, resp_type, Address, FRAME_PREFIX};
use std::fmt;

/// One decoded request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `0x00` / `0x80`: a whole request, or a push when `session == 0`.
    Single { addr: Address<'a>, session: u32, payload: &'a [u8] },
    /// `0x01`/`0x41`/`0x81`/`0xc1`: a multi-part request (or push) of `total` bytes follows.
    MultiHeader { addr: Address<'a>, session: u32, total: u32, push: bool },
    /// `0x02` / `0x03` (`last`): one part of the multi-part message of `session`.
    Part { session: u32, data: &'a [u8], last: bool },
    /// `0x04`: the trace tag of the request that follows.
    Trace { tag: &'a [u8] },
}

/// One decoded response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// Type 0: the call failed; `msg` is the remote error text.
    Error { session: u32, msg: &'a [u8] },
    /// Type 1: the whole answer.
    Ok { session: u32, payload: &'a [u8] },
    /// Type 2: a multi-part answer of `total` bytes begins.
    MultiBegin { session: u32, total: u32 },
    /// Type 3 (`last == false`) or 4 (`last == true`): a piece of a multi-part answer.
    MultiPart { session: u32, data: &'a [u8], last: bool },
}

impl Response<'_> {
    pub fn session(&self) -> u32 {
        match *self {
            Response::Error { session, .. }
            | Response::Ok { session, .. }
            | Response::MultiBegin { session, .. }
            | Response::MultiPart { session, .. } => session,
        }
    }
}

/// A malformed body. `Display` gives the text stock skynet raises for the same input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// An empty request body.
    Empty,
    /// A request body shorter than its type needs; `size` is the body length.
    TooShort { size: i64 },
    /// A numeric multi-part header whose body is not exactly 13 bytes.
    MultiHeaderSize { size: i64 },
    /// A part body shorter than its 5-byte header.
    PartTooShort,
    /// An unknown request type byte.
    UnknownType(u8),
    /// A response body that is too short, has a bad begin frame, or an unknown type.
    BadResponse,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Empty => f.write_str("Invalid req package. size == 0"),
            DecodeError::TooShort { size } => write!(f, "Invalid cluster message (size={size})"),
            DecodeError::MultiHeaderSize { size } => {
                write!(f, "Invalid cluster message size {size} (multi req must be 13)")
            }
            DecodeError::PartTooShort => f.write_str("Invalid cluster multi part message"),
            // Stock prints the type as a C `char`, which is signed on the platforms skynet runs on.
            DecodeError::UnknownType(t) => write!(f, "Invalid req package type {}", t as i8),
            DecodeError::BadResponse => f.write_str("Invalid cluster response"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl DecodeError {
    /// The error stock gives for a request body whose length is `size` (negative or too
    /// small to hold anything) and whose first byte is `first`. Used where a host passes
    /// a length the body cannot have.
    pub fn for_bad_length(first: u8, size: i64) -> DecodeError {
        match first {
            req_type::MULTI_ID | req_type::MULTI_ID_PUSH => DecodeError::MultiHeaderSize { size },
            req_type::PART | req_type::PART_LAST => DecodeError::PartTooShort,
            req_type::SINGLE_ID
            | req_type::TRACE
            | req_type::SINGLE_NAME
            | req_type::MULTI_NAME
            | req_type::MULTI_NAME_PUSH => DecodeError::TooShort { size },
            t => DecodeError::UnknownType(t),
        }
    }
}

/// Decodes one request body (frame without its length prefix).
#[inline]
pub fn decode_request(body: &[u8]) -> Result<Request<'_>, DecodeError> {
    let size = body.len() as i64;
    let Some(&kind) = body.first() else {
        return Err(DecodeError::Empty);
    };
    match kind {
        req_type::SINGLE_ID => {
            if body.len() < 9 {
                return Err(DecodeError::TooShort { size });
            }
            Ok(Request::Single {
                addr: Address::Id(read_u32_le(&body[1..])),
                session: read_u32_le(&body[5..]),
                payload: &body[9..],
            })
        }
        req_type::MULTI_ID | req_type::MULTI_ID_PUSH => {
            if body.len() != 13 {
                return Err(DecodeError::MultiHeaderSize { size });
            }
            Ok(Request::MultiHeader {
                addr: Address::Id(read_u32_le(&body[1..])),
                session: read_u32_le(&body[5..]),
                total: read_u32_le(&body[9..]),
                push: kind == req_type::MULTI_ID_PUSH,
            })
        }
        req_type::PART | req_type::PART_LAST => {
            if body.len() < 5 {
                return Err(DecodeError::PartTooShort);
            }
            Ok(Request::Part { session: read_u32_le(&body[1..]), data: &body[5..], last: kind == req_type::PART_LAST })
        }
        req_type::TRACE => Ok(Request::Trace { tag: &body[1..] }),
        req_type::SINGLE_NAME => {
            let name_len = name_len(body)?;
            if body.len() < name_len + 6 {
                return Err(DecodeError::TooShort { size });
            }
            Ok(Request::Single {
                addr: Address::Name(&body[2..2 + name_len]),
                session: read_u32_le(&body[2 + name_len..]),
                payload: &body[6 + name_len..],
            })
        }
        req_type::MULTI_NAME | req_type::MULTI_NAME_PUSH => {
            let name_len = name_len(body)?;
            // Stock only checks a minimum length: trailing bytes are ignored.
            if body.len() < name_len + 10 {
                return Err(DecodeError::TooShort { size });
            }
            Ok(Request::MultiHeader {
                addr: Address::Name(&body[2..2 + name_len]),
                session: read_u32_le(&body[2 + name_len..]),
                total: read_u32_le(&body[6 + name_len..]),
                push: kind == req_type::MULTI_NAME_PUSH,
            })
        }
        other => Err(DecodeError::UnknownType(other)),
    }
}

#[inline]
fn name_len(body: &[u8]) -> Result<usize, DecodeError> {
    match body.get(1) {
        Some(&n) => Ok(n as usize),
        None => Err(DecodeError::TooShort { size: body.len() as i64 }),
    }
}

/// Decodes one response body (frame without its length prefix).
#[inline]
pub fn decode_response(body: &[u8]) -> Result<Response<'_>, DecodeError> {
    if body.len() < 5 {
        return Err(DecodeError::BadResponse);
    }
    let session = read_u32_le(body);
    let data = &body[5..];
    match body[4] {
        resp_type::ERROR => Ok(Response::Error { session, msg: data }),
        resp_type::OK => Ok(Response::Ok { session, payload: data }),
        resp_type::MULTI_BEGIN if body.len() == 9 => Ok(Response::MultiBegin { session, total: read_u32_le(data) }),
        resp_type::MULTI_PART => Ok(Response::MultiPart { session, data, last: false }),
        resp_type::MULTI_END => Ok(Response::MultiPart { session, data, last: true }),
        _ => Err(DecodeError::BadResponse),
    }
}

/// Cuts the first complete frame off `buf`: returns its body and the number of bytes the
/// whole frame (prefix + body) takes, or `None` when `buf` does not yet hold a whole frame.
#[inline]
pub fn cut_frame(buf: &[u8]) -> Option<(&[u8], usize)> {
    if buf.len() < FRAME_PREFIX {
        return None;
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    let end = FRAME_PREFIX + len;
    if buf.len() < end {
        return None;
    }
    Some((&buf[FRAME_PREFIX..end], end))
}

/// Iterates over the complete frames at the front of a byte buffer; [`FrameCutter::consumed`]
/// then tells how many bytes were used, so the caller can keep the incomplete tail.
pub struct FrameCutter<'a> {
    buf: &'a [u8],
    consumed: usize,
}

impl<'a> FrameCutter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        FrameCutter { buf, consumed: 0 }
    }

    /// Bytes taken by the frames returned so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl<'a> Iterator for FrameCutter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (body, used) = cut_frame(&self.buf[self.consumed..])?;
        self.consumed += used;
        Some(body)
    }
}
