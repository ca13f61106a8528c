//! Header of a multi-part response piece, for senders that write the payload bytes from
//! their own buffer (vectored writes) instead of copying them behind the header.

use super::{resp_type, MULTI_PART};

/// Length of the header before each chunk of a multi-part response.
pub const RESPONSE_PART_HEADER: usize = 7;

/// The 7 bytes that precede a chunk of `chunk_len` bytes in a multi-part response piece
/// (type 3, or 4 when `last`): the same bytes `encode_response_part` writes before the chunk.
#[inline]
pub fn response_part_header(session: u32, chunk_len: usize, last: bool) -> [u8; RESPONSE_PART_HEADER] {
    debug_assert!(chunk_len <= MULTI_PART);
    let len = ((chunk_len + 5) as u16).to_be_bytes();
    let s = session.to_le_bytes();
    let kind = if last { resp_type::MULTI_END } else { resp_type::MULTI_PART };
    [len[0], len[1], s[0], s[1], s[2], s[3], kind]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_full_encoder() {
        for (n, last) in [(1usize, true), (MULTI_PART, false), (100, true)] {
            let chunk = vec![9u8; n];
            let mut full = Vec::new();
            super::super::encode_response_part(&mut full, 0x01020304, &chunk, last);
            assert_eq!(&full[..RESPONSE_PART_HEADER], &response_part_header(0x01020304, n, last));
        }
    }
}
