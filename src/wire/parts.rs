//! The head of a part frame, both directions: what a multi-part message's pieces carry before
//! their data. Senders that write the payload from their own buffer (vectored writes, a
//! header written in place in front of a chunk) build it here; readers that want to read a
//! part's data straight into its message's buffer decode it here, before the frame is whole.
//!
//! A request part is `len:u16be, type:u8 (2, or 3 for the last), session:u32le`; a response
//! part is `len:u16be, session:u32le, type:u8 (3, or 4 for the last)`. Both are 7 bytes and
//! `len` counts the 5 bytes after it plus the data.

use super::{read_u32_le, req_type, resp_type, FRAME_PREFIX, MULTI_PART};

/// Bytes before the data of a part frame (length prefix, type, session), both directions.
pub const PART_HEADER: usize = 7;

/// Bytes of a part frame's body before its data (type and session).
const PART_BODY_HEADER: usize = PART_HEADER - FRAME_PREFIX;

/// A decoded part-frame head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartHeader {
    /// The session of the message the part belongs to.
    pub session: u32,
    /// Bytes of data the frame carries after its 7-byte head.
    pub len: usize,
    /// The last part of its message.
    pub last: bool,
}

#[inline]
fn frame_len(chunk_len: usize) -> [u8; 2] {
    debug_assert!(chunk_len <= MULTI_PART);
    ((chunk_len + PART_BODY_HEADER) as u16).to_be_bytes()
}

/// The 7 bytes that precede a chunk of `chunk_len` bytes in a request part frame (`0x02`, or
/// `0x03` when `last`). Lets a caller that owns the payload buffer write the header in front
/// of a chunk in place instead of copying the chunk.
#[inline]
pub fn request_part_header(session: u32, chunk_len: usize, last: bool) -> [u8; PART_HEADER] {
    let len = frame_len(chunk_len);
    let s = session.to_le_bytes();
    let kind = if last { req_type::PART_LAST } else { req_type::PART };
    [len[0], len[1], kind, s[0], s[1], s[2], s[3]]
}

/// The 7 bytes that precede a chunk of `chunk_len` bytes in a multi-part response piece
/// (type 3, or 4 when `last`).
#[inline]
pub fn response_part_header(session: u32, chunk_len: usize, last: bool) -> [u8; PART_HEADER] {
    let len = frame_len(chunk_len);
    let s = session.to_le_bytes();
    let kind = if last { resp_type::MULTI_END } else { resp_type::MULTI_PART };
    [len[0], len[1], s[0], s[1], s[2], s[3], kind]
}

/// The data length a part frame's length prefix declares, if the frame can be a part.
#[inline]
fn data_len(head: &[u8]) -> Option<usize> {
    (u16::from_be_bytes([head[0], head[1]]) as usize).checked_sub(PART_BODY_HEADER)
}

/// Decodes the head of a request part frame (length prefix included) at the start of `head`,
/// which may go on with any part of the frame's data. `None` when fewer than 7 bytes are
/// there, or they are not the head of a request part.
#[inline]
pub fn decode_request_part_header(head: &[u8]) -> Option<PartHeader> {
    let head = head.get(..PART_HEADER)?;
    let last = match head[2] {
        req_type::PART => false,
        req_type::PART_LAST => true,
        _ => return None,
    };
    Some(PartHeader { session: read_u32_le(&head[3..]), len: data_len(head)?, last })
}

/// Decodes the head of a response part frame (length prefix included) at the start of
/// `head`, as [`decode_request_part_header`] does for requests.
#[inline]
pub fn decode_response_part_header(head: &[u8]) -> Option<PartHeader> {
    let head = head.get(..PART_HEADER)?;
    let last = match head[6] {
        resp_type::MULTI_PART => false,
        resp_type::MULTI_END => true,
        _ => return None,
    };
    Some(PartHeader { session: read_u32_le(&head[2..]), len: data_len(head)?, last })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_request_part, encode_response_part};

    #[test]
    fn matches_the_full_encoders() {
        for (n, last) in [(0usize, false), (1, true), (MULTI_PART, false), (100, true)] {
            let chunk = vec![9u8; n];
            let mut full = Vec::new();
            encode_response_part(&mut full, 0x01020304, &chunk, last);
            assert_eq!(&full[..PART_HEADER], &response_part_header(0x01020304, n, last));
            assert_eq!(full.len(), PART_HEADER + n);
            full.clear();
            encode_request_part(&mut full, 0x01020304, &chunk, last);
            assert_eq!(&full[..PART_HEADER], &request_part_header(0x01020304, n, last));
            assert_eq!(full.len(), PART_HEADER + n);
        }
    }

    #[test]
    fn decodes_what_it_encodes() {
        for (session, n, last) in [(1u32, 0usize, false), (0x7fff_ffff, MULTI_PART, true), (42, 17, false)] {
            let want = Some(PartHeader { session, len: n, last });
            // Followed by some of the data, or by nothing yet.
            let mut h = request_part_header(session, n, last).to_vec();
            assert_eq!(decode_request_part_header(&h), want);
            h.extend_from_slice(&[1, 2, 3]);
            assert_eq!(decode_request_part_header(&h), want);
            let h = response_part_header(session, n, last);
            assert_eq!(decode_response_part_header(&h), want);
        }
    }

    #[test]
    fn refuses_what_cannot_be_a_part_head() {
        let h = request_part_header(5, 10, false);
        assert_eq!(decode_request_part_header(&h[..PART_HEADER - 1]), None, "too short");
        let mut bad = h;
        bad[2] = req_type::SINGLE_ID;
        assert_eq!(decode_request_part_header(&bad), None, "not a part type");
        bad = h;
        bad[0] = 0;
        bad[1] = 4;
        assert_eq!(decode_request_part_header(&bad), None, "frame shorter than a part's body head");
        bad[1] = 5;
        assert_eq!(decode_request_part_header(&bad), Some(PartHeader { session: 5, len: 0, last: false }));
        let h = response_part_header(5, 10, true);
        assert_eq!(decode_response_part_header(&h[..PART_HEADER - 1]), None);
        let mut bad = h;
        bad[6] = resp_type::MULTI_BEGIN;
        assert_eq!(decode_response_part_header(&bad), None);
    }
}
