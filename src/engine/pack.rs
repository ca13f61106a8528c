//! The few skynet.pack values the engine itself reads and writes: the name query sends
//! `skynet.pack(name)` and is answered with `skynet.packstring(address)`.
//!
//! Packing goes through `crate::seri`; the two readers below are tiny and allocation-free
//! (a query is one string in, one integer out). The format (lua-seri):
//! a type byte `type | sub << 3`, then the value.

const TYPE_NUMBER: u8 = 2;
const TYPE_SHORT_STRING: u8 = 4;
const TYPE_LONG_STRING: u8 = 5;
const NUM_ZERO: u8 = 0;
const NUM_BYTE: u8 = 1;
const NUM_WORD: u8 = 2;
const NUM_DWORD: u8 = 4;
const NUM_QWORD: u8 = 6;

/// Appends `skynet.pack(v)` for one integer (delegates to `crate::seri`).
#[inline]
pub fn pack_int(out: &mut Vec<u8>, v: i64) {
    crate::seri::encode_integer_into(out, v);
}

/// Appends `skynet.pack(s)` for one string (delegates to `crate::seri`). Names and
/// payloads the engine packs are far below seri's 4 GiB string limit.
#[inline]
pub fn pack_str(out: &mut Vec<u8>, s: &[u8]) {
    crate::seri::encode_str_into(out, s).expect("string below 4 GiB");
}

/// Reads one packed string at the start of `b`: `(string, bytes used)`.
pub fn unpack_str(b: &[u8]) -> Option<(&[u8], usize)> {
    let (&h, rest) = b.split_first()?;
    let (t, sub) = (h & 7, (h >> 3) as usize);
    let (len, hdr) = match (t, sub) {
        (TYPE_SHORT_STRING, n) => (n, 1),
        (TYPE_LONG_STRING, 2) => (u16::from_le_bytes([*rest.first()?, *rest.get(1)?]) as usize, 3),
        (TYPE_LONG_STRING, 4) => {
            let r = rest.get(..4)?;
            (u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize, 5)
        }
        _ => return None,
    };
    let s = b.get(hdr..hdr + len)?;
    Some((s, hdr + len))
}

/// Reads one packed integer at the start of `b`: `(value, bytes used)`.
pub fn unpack_int(b: &[u8]) -> Option<(i64, usize)> {
    let (&h, rest) = b.split_first()?;
    if h & 7 != TYPE_NUMBER {
        return None;
    }
    match h >> 3 {
        NUM_ZERO => Some((0, 1)),
        NUM_BYTE => Some((*rest.first()? as i64, 2)),
        NUM_WORD => Some((u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as i64, 3)),
        NUM_DWORD => Some((i32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as i64, 5)),
        NUM_QWORD => Some((i64::from_le_bytes(rest.get(..8)?.try_into().ok()?), 9)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_and_strings_match_stock_bytes() {
        let mut v = Vec::new();
        pack_int(&mut v, 10);
        assert_eq!(v, [0x0a, 0x0a]);
        v.clear();
        pack_int(&mut v, 876259991303);
        assert_eq!(v, [0x32, 0x07, 0x5f, 0x2a, 0x05, 0xcc, 0, 0, 0]);
        v.clear();
        pack_str(&mut v, b"echo");
        assert_eq!(v, [0x24, b'e', b'c', b'h', b'o']);
        assert_eq!(unpack_str(&v), Some((&b"echo"[..], 5)));
        for x in [0i64, 1, 255, 256, 65535, 65536, -1, i32::MAX as i64, i64::MIN, 1 << 40] {
            v.clear();
            pack_int(&mut v, x);
            assert_eq!(unpack_int(&v), Some((x, v.len())));
        }
        for n in [0usize, 31, 32, 65535, 65536] {
            v.clear();
            let s = vec![7u8; n];
            pack_str(&mut v, &s);
            assert_eq!(unpack_str(&v), Some((&s[..], v.len())));
        }
    }
}
