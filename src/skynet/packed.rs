//! Values of skynet.pack read or shown by hand, where decoding the whole message would
//! cost more than it tells: the address of a cluster request (the hot path), and a
//! value shown in a log line.

use crate::seri::{self, Value};
use crate::wire::OwnedAddress;

/// The header byte of a packed float: type number, cookie real, then 8 bytes little-endian.
const REAL: u8 = seri::combine(seri::TYPE_NUMBER, seri::NUMBER_REAL);

/// Reads the packed address value: an integer (numeric address, truncated to 32 bits as
/// stock's `packrequest`), a float (integral: that number; else 0, as `lua_tointeger`),
/// or a string (a name).
pub(super) fn read_addr(b: &[u8]) -> Option<(OwnedAddress, usize)> {
    if let Some((v, used)) = crate::seri::decode_integer_prefix(b) {
        return Some((OwnedAddress::Id(v as u32), used));
    }
    if let Some((s, used)) = crate::seri::decode_str_prefix(b) {
        return Some((OwnedAddress::Name(s.to_vec()), used));
    }
    if b.first() == Some(&REAL) && b.len() >= 9 {
        let f = f64::from_le_bytes(b[1..9].try_into().ok()?);
        let n = if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 { f as i64 } else { 0 };
        return Some((OwnedAddress::Id(n as u32), 9));
    }
    None
}

/// A value as a log line shows it (`Config KEY = VALUE`).
pub(super) fn show_value(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::String(s) => String::from_utf8_lossy(s).into_owned(),
        other => other.type_name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_of_a_request_as_stock_reads_it() {
        let one = |v: Value| read_addr(&seri::encode(&[v]).unwrap()).map(|(a, _)| a);
        assert_eq!(REAL, 2 | (8 << 3));
        assert_eq!(one(Value::Integer(0x1_0000_0007)), Some(OwnedAddress::Id(7)));
        assert_eq!(one(Value::String(b".echo".to_vec())), Some(OwnedAddress::Name(b".echo".to_vec())));
        assert_eq!(one(Value::Real(12.0)), Some(OwnedAddress::Id(12)));
        assert_eq!(one(Value::Real(1.5)), Some(OwnedAddress::Id(0)));
        assert_eq!(one(Value::Boolean(true)), None);
    }
}
