//! The few skynet.pack values the engine itself reads and writes: the name query sends
//! `skynet.pack(name)` and is answered with `skynet.packstring(address)`. All of it is
//! `crate::seri`'s: the writers below only fix the error case the engine cannot meet, and
//! the readers are seri's allocation-free prefix readers.

pub use crate::seri::{decode_integer_prefix as unpack_int, decode_str_prefix as unpack_str};

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
