//! Frame encoders. Each writes complete frames (2-byte big-endian length prefix + body)
//! into a caller-owned [`BufMut`]; none allocates on its own.

use super::parts::{request_part_header, response_part_header};
use super::{req_type, resp_type, Address, MAX_NAME_LEN, MAX_TRACE_TAG, MULTI_PART};
use bytes::BufMut;
use std::fmt;

/// Why a frame could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A name address must be 1..=255 bytes long.
    NameLength(usize),
    /// A trace tag may be at most `MAX_TRACE_TAG` bytes long.
    TraceTooLong(usize),
    /// The total size of a multi-part message travels as a u32.
    PayloadTooLarge(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NameLength(n) => {
                write!(f, "name length {n} is invalid, must be between 1 and 255")
            }
            EncodeError::TraceTooLong(n) => write!(f, "trace tag is too long : {n}"),
            EncodeError::PayloadTooLarge(n) => write!(f, "payload of {n} bytes is too large"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Request or push: a push carries session 0 in a single frame and the 0x41/0xc1 types
/// in a multi-part header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Call,
    Push,
}

/// True when a request payload of `len` bytes travels as header + parts.
#[inline]
pub fn request_is_multi(len: usize) -> bool {
    len >= MULTI_PART
}

/// True when a response payload of `len` bytes travels as begin + parts.
#[inline]
pub fn response_is_multi(len: usize) -> bool {
    len > MULTI_PART
}

#[inline]
fn put_prefix<B: BufMut>(out: &mut B, body_len: usize) {
    debug_assert!(body_len <= super::MAX_FRAME_BODY);
    out.put_u16(body_len as u16);
}

#[inline]
fn check_name(name: &[u8]) -> Result<(), EncodeError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        Err(EncodeError::NameLength(name.len()))
    } else {
        Ok(())
    }
}

/// Length of the whole single-frame request (prefix included) for `addr` and a payload of
/// `payload_len` bytes.
#[inline]
pub fn request_single_frame_len(addr: Address<'_>, payload_len: usize) -> usize {
    match addr {
        Address::Id(_) => 2 + 9 + payload_len,
        Address::Name(name) => 2 + 6 + name.len() + payload_len,
    }
}

/// Length of a multi-part request header frame (prefix included) for `addr`.
#[inline]
pub fn multi_header_frame_len(addr: Address<'_>) -> usize {
    match addr {
        Address::Id(_) => 2 + 13,
        Address::Name(name) => 2 + 10 + name.len(),
    }
}

/// Writes a single-frame request (`0x00` / `0x80`). `session_field` is written as is:
/// pass 0 for a push. The payload must be shorter than `MULTI_PART`.
#[inline]
pub fn encode_request_single<B: BufMut>(
    out: &mut B,
    addr: Address<'_>,
    session_field: u32,
    payload: &[u8],
) -> Result<(), EncodeError> {
    debug_assert!(!request_is_multi(payload.len()));
    match addr {
        Address::Id(id) => {
            put_prefix(out, payload.len() + 9);
            out.put_u8(req_type::SINGLE_ID);
            out.put_u32_le(id);
        }
        Address::Name(name) => {
            check_name(name)?;
            put_prefix(out, payload.len() + 6 + name.len());
            out.put_u8(req_type::SINGLE_NAME);
            out.put_u8(name.len() as u8);
            out.put_slice(name);
        }
    }
    out.put_u32_le(session_field);
    out.put_slice(payload);
    Ok(())
}

/// Writes the header frame of a multi-part request or push (`0x01`/`0x41`/`0x81`/`0xc1`).
#[inline]
pub fn encode_multi_header<B: BufMut>(
    out: &mut B,
    addr: Address<'_>,
    session: u32,
    total: usize,
    kind: RequestKind,
) -> Result<(), EncodeError> {
    let total32 = u32::try_from(total).map_err(|_| EncodeError::PayloadTooLarge(total))?;
    let push = kind == RequestKind::Push;
    match addr {
        Address::Id(id) => {
            put_prefix(out, 13);
            out.put_u8(if push { req_type::MULTI_ID_PUSH } else { req_type::MULTI_ID });
            out.put_u32_le(id);
        }
        Address::Name(name) => {
            check_name(name)?;
            put_prefix(out, 10 + name.len());
            out.put_u8(if push { req_type::MULTI_NAME_PUSH } else { req_type::MULTI_NAME });
            out.put_u8(name.len() as u8);
            out.put_slice(name);
        }
    }
    out.put_u32_le(session);
    out.put_u32_le(total32);
    Ok(())
}

/// Writes one part frame of a multi-part request (`0x02`, or `0x03` when `last`).
/// `chunk` is at most `MULTI_PART` bytes.
#[inline]
pub fn encode_request_part<B: BufMut>(out: &mut B, session: u32, chunk: &[u8], last: bool) {
    out.put_slice(&request_part_header(session, chunk.len(), last));
    out.put_slice(chunk);
}

/// Writes a whole request or push: one frame when the payload is below `MULTI_PART`, else
/// a header and `ceil(len / MULTI_PART)` parts. A single-frame push writes session 0; a
/// multi-part push carries `session` (the caller has consumed one for it).
pub fn encode_request<B: BufMut>(
    out: &mut B,
    addr: Address<'_>,
    session: u32,
    payload: &[u8],
    kind: RequestKind,
) -> Result<(), EncodeError> {
    if !request_is_multi(payload.len()) {
        let field = if kind == RequestKind::Push { 0 } else { session };
        return encode_request_single(out, addr, field, payload);
    }
    encode_multi_header(out, addr, session, payload.len(), kind)?;
    let parts = payload.len().div_ceil(MULTI_PART);
    for (i, chunk) in payload.chunks(MULTI_PART).enumerate() {
        encode_request_part(out, session, chunk, i + 1 == parts);
    }
    Ok(())
}

/// Writes a trace frame (`0x04`): the tag the next request carries.
#[inline]
pub fn encode_trace<B: BufMut>(out: &mut B, tag: &[u8]) -> Result<(), EncodeError> {
    if tag.len() > MAX_TRACE_TAG {
        return Err(EncodeError::TraceTooLong(tag.len()));
    }
    put_prefix(out, tag.len() + 1);
    out.put_u8(req_type::TRACE);
    out.put_slice(tag);
    Ok(())
}

/// Writes a single response frame of type `kind` (error 0, ok 1, or a part 3/4) carrying
/// `data` (at most `MULTI_PART` bytes).
#[inline]
pub fn encode_response_single<B: BufMut>(out: &mut B, session: u32, kind: u8, data: &[u8]) {
    debug_assert!(data.len() <= MULTI_PART);
    put_prefix(out, data.len() + 5);
    out.put_u32_le(session);
    out.put_u8(kind);
    out.put_slice(data);
}

/// Writes the begin frame (type 2) of a multi-part response of `total` bytes.
#[inline]
pub fn encode_response_begin<B: BufMut>(out: &mut B, session: u32, total: u32) {
    put_prefix(out, 9);
    out.put_u32_le(session);
    out.put_u8(resp_type::MULTI_BEGIN);
    out.put_u32_le(total);
}

/// Writes one part of a multi-part response: type 3, or type 4 for the last.
/// `chunk` is at most `MULTI_PART` bytes.
#[inline]
pub fn encode_response_part<B: BufMut>(out: &mut B, session: u32, chunk: &[u8], last: bool) {
    out.put_slice(&response_part_header(session, chunk.len(), last));
    out.put_slice(chunk);
}

/// Writes a whole response. `Ok` payloads above `MULTI_PART` bytes go as begin + parts;
/// an error text is truncated to `MULTI_PART` bytes, as stock does.
pub fn encode_response<B: BufMut>(out: &mut B, session: u32, result: Result<&[u8], &[u8]>) -> Result<(), EncodeError> {
    match result {
        Err(msg) => {
            let msg = &msg[..msg.len().min(MULTI_PART)];
            encode_response_single(out, session, resp_type::ERROR, msg);
        }
        Ok(payload) if !response_is_multi(payload.len()) => {
            encode_response_single(out, session, resp_type::OK, payload);
        }
        Ok(payload) => {
            let total = u32::try_from(payload.len()).map_err(|_| EncodeError::PayloadTooLarge(payload.len()))?;
            encode_response_begin(out, session, total);
            let parts = payload.len().div_ceil(MULTI_PART);
            for (i, chunk) in payload.chunks(MULTI_PART).enumerate() {
                encode_response_part(out, session, chunk, i + 1 == parts);
            }
        }
    }
    Ok(())
}
