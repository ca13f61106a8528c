//! The skynet cluster wire protocol, as pure functions: no I/O, no Lua, no globals.
//!
//! Every packet on a link is a *frame*: a 2-byte big-endian length `N`, then `N` bytes of
//! body. Inside a body every 32-bit integer is little-endian. Requests travel from the
//! calling node (clustersender) to the serving node (clusteragent); responses travel back.
//!
//! * Encoders write whole frames (length prefix included) into any [`BufMut`](bytes::BufMut) the caller
//!   owns: a `Vec<u8>`, a `BytesMut`, or an uninitialised stack slice.
//! * Decoders take one frame **body** (prefix already stripped, as skynet's gate delivers
//!   it) as a borrowed slice and return views into it; they never allocate.
//! * [`FrameCutter`] cuts bodies out of a byte stream; [`Reassembler`] joins multi-part
//!   messages per session, whatever other frames are interleaved between the parts (the
//!   engine's read path runs it, with its buffer pool and node-wide budget).
//! * [`request_part_header`] / [`response_part_header`] and their decoders give the 7-byte
//!   head of a part frame, for writers and readers that move the data on their own.
//!
//! Thresholds differ by direction, as in stock skynet: a request goes multi-part when its
//! payload is `>= MULTI_PART` bytes, a response only when it is `> MULTI_PART` bytes.

mod decode;
mod encode;
mod parts;
mod reassembly;

pub use decode::{cut_frame, decode_request, decode_response, DecodeError, FrameCutter, Request, Response};
pub use encode::{
    encode_multi_header, encode_request, encode_request_part, encode_request_single, encode_response,
    encode_response_begin, encode_response_part, encode_response_single, encode_trace, multi_header_frame_len,
    request_is_multi, request_single_frame_len, response_is_multi, EncodeError, RequestKind,
};
pub use parts::{
    decode_request_part_header, decode_response_part_header, request_part_header, response_part_header, PartHeader,
    PART_HEADER,
};
pub use reassembly::{Begin, BufferSource, Heap, Part, Reassembler, ReassemblyBudget, ReassemblyError, Unbounded};

/// Size of one part of a multi-part message, and the single/multi threshold.
pub const MULTI_PART: usize = 0x8000;
/// Longest name a request may carry (the length travels in one byte).
pub const MAX_NAME_LEN: usize = 255;
/// Longest trace tag `packtrace` accepts.
pub const MAX_TRACE_TAG: usize = 0x8000;
/// Largest frame body the 2-byte length prefix can describe.
pub const MAX_FRAME_BODY: usize = 0xffff;
/// Length of a frame's length prefix.
pub const FRAME_PREFIX: usize = 2;
/// Largest session number; the one after it is 1 again.
pub const MAX_SESSION: u32 = 0x7fff_ffff;

/// Request body type bytes.
pub mod req_type {
    pub const SINGLE_ID: u8 = 0x00;
    pub const MULTI_ID: u8 = 0x01;
    pub const MULTI_ID_PUSH: u8 = 0x41;
    pub const PART: u8 = 0x02;
    pub const PART_LAST: u8 = 0x03;
    pub const TRACE: u8 = 0x04;
    pub const SINGLE_NAME: u8 = 0x80;
    pub const MULTI_NAME: u8 = 0x81;
    pub const MULTI_NAME_PUSH: u8 = 0xc1;
}

/// Response body type bytes (the byte after the session).
pub mod resp_type {
    pub const ERROR: u8 = 0;
    pub const OK: u8 = 1;
    pub const MULTI_BEGIN: u8 = 2;
    pub const MULTI_PART: u8 = 3;
    pub const MULTI_END: u8 = 4;
}

/// Where a request goes: a numeric service handle, or a name (`@registered` or `.local`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Address<'a> {
    Id(u32),
    Name(&'a [u8]),
}

/// An [`Address`] that owns its name, for keeping past the borrow it came from (a
/// multi-part header waiting for its parts, a call waiting for its link).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OwnedAddress {
    Id(u32),
    Name(Vec<u8>),
}

impl OwnedAddress {
    /// Copies the name, if any.
    pub fn of(a: Address<'_>) -> Self {
        match a {
            Address::Id(i) => OwnedAddress::Id(i),
            Address::Name(n) => OwnedAddress::Name(n.to_vec()),
        }
    }

    /// Borrows it back as an [`Address`].
    pub fn as_addr(&self) -> Address<'_> {
        match self {
            OwnedAddress::Id(i) => Address::Id(*i),
            OwnedAddress::Name(n) => Address::Name(n),
        }
    }
}

/// The session that follows `session` on a link: sessions run 1..=0x7fffffff, then wrap to 1.
#[inline]
pub fn next_session(session: u32) -> u32 {
    if session >= MAX_SESSION {
        1
    } else {
        session + 1
    }
}

#[inline]
pub(crate) fn read_u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
