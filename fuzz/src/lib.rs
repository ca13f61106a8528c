//! The properties the fuzz drivers check on every input.

use skynet_cluster::seri::{
    decode, decode_integer_prefix, decode_str_prefix, encode, EncodeError, Value,
};
use skynet_cluster::wire::{self, Begin, Heap, Part, Reassembler, Request};

/// Decode arbitrary bytes. It must not panic. An error must point inside the input. Accepted values
/// must re-encode (unless nested one level deeper than `encode` allows, which `decode` tolerates)
/// and decode back to themselves. The prefix readers the engine uses (the name query) must agree
/// with `decode` on the first value. Panics (the fuzzer's failure signal) when a check fails.
pub fn check_decode(data: &[u8]) -> Outcome {
    check_prefix_readers(data);
    match decode(data) {
        Ok(values) => match encode(&values) {
            Ok(again) => {
                let back = decode(&again).expect("re-encoded bytes must decode");
                assert!(back == values, "decode(encode(decode(x))) != decode(x)");
                Outcome::Ok {
                    values: values.len(),
                    shape: shape(&values),
                }
            }
            Err(EncodeError::TooDeep { .. }) => Outcome::Ok {
                values: values.len(),
                shape: shape(&values) | 1 << 31,
            },
            Err(e) => panic!("decoded values do not re-encode: {e}"),
        },
        Err(e) => {
            assert_eq!(
                e.offset() + e.remaining(),
                data.len(),
                "error position outside input"
            );
            assert!(!e.to_string().is_empty());
            Outcome::Err {
                kind: std::mem::discriminant(&e),
                offset: e.offset(),
            }
        }
    }
}

/// A coarse summary of what the decoder did, used by the plain harness as cheap feedback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// `shape`: which kinds of values occur (bits 0..7) and the deepest nesting (bits 8..).
    Ok { values: usize, shape: u32 },
    Err {
        kind: std::mem::Discriminant<skynet_cluster::seri::DecodeError>,
        offset: usize,
    },
}

fn shape(values: &[Value]) -> u32 {
    fn walk(v: &Value, depth: u32, kinds: &mut u32, deepest: &mut u32) {
        let bit = match v {
            Value::Nil => 0,
            Value::Boolean(_) => 1,
            Value::Integer(_) => 2,
            Value::Real(_) => 3,
            Value::String(_) => 4,
            Value::LightUserdata(_) => 5,
            Value::Table(t) => {
                *deepest = (*deepest).max(depth + 1);
                for x in &t.array {
                    walk(x, depth + 1, kinds, deepest);
                }
                for (k, x) in &t.hash {
                    walk(k, depth + 1, kinds, deepest);
                    walk(x, depth + 1, kinds, deepest);
                }
                6
            }
        };
        *kinds |= 1 << bit;
    }
    let (mut kinds, mut deepest) = (0, 0);
    for v in values {
        walk(v, 0, &mut kinds, &mut deepest);
    }
    kinds | deepest << 8
}

/// `decode_str_prefix` / `decode_integer_prefix` read what `decode` reads as the first value.
fn check_prefix_readers(data: &[u8]) {
    let int = decode_integer_prefix(data);
    if let Some((v, used)) = int {
        assert_eq!(
            decode(&data[..used]).ok(),
            Some(vec![Value::Integer(v)]),
            "integer prefix"
        );
    }
    let s = decode_str_prefix(data);
    if let Some((v, used)) = s {
        assert_eq!(
            decode(&data[..used]).ok(),
            Some(vec![Value::String(v.to_vec())]),
            "string prefix"
        );
    }
    // The other way: a whole first value that is an integer or a string is read by them.
    if let Ok(values) = decode(data) {
        match values.first() {
            Some(Value::Integer(v)) => assert_eq!(int.map(|x| x.0), Some(*v)),
            Some(Value::String(v)) => assert_eq!(s.map(|x| x.0), Some(&v[..])),
            _ => {}
        }
    }
}

/// Cut arbitrary bytes into request frames and join their multi-part messages with the
/// reassembler the engine runs (small caps, so that its limits are reached). It must not
/// panic, must never hand out a message longer or shorter than its header declared, and the
/// part-header decoder must agree with the frame decoder. Returns the messages joined.
pub fn check_wire(data: &[u8]) -> usize {
    let mut r: Reassembler<u32> = Reassembler::new(1 << 17, 8);
    let mut joined = 0;
    let mut cut = wire::FrameCutter::new(data);
    let mut at = 0;
    while let Some(body) = cut.next() {
        let frame = &data[at..cut.consumed()];
        at = cut.consumed();
        let req = wire::decode_request(body);
        let head = wire::decode_request_part_header(frame).map(|h| (h.session, h.len, h.last));
        let part = match req {
            Ok(Request::Part {
                session,
                data,
                last,
            }) => Some((session, data.len(), last)),
            _ => None,
        };
        assert_eq!(head, part, "part-header decoder and frame decoder disagree");
        match req {
            Ok(Request::MultiHeader { session, total, .. }) => {
                // A header the caps refuse closes the link in the engine; here we go on.
                let _: Result<Begin, _> = r.begin(session, total, total);
            }
            Ok(Request::Part {
                session,
                data,
                last,
            }) => {
                if let Ok(Part::Done(total, payload)) = r.part(session, data, last, &Heap) {
                    assert_eq!(
                        payload.len(),
                        total as usize,
                        "joined message of the wrong length"
                    );
                    joined += 1;
                }
            }
            _ => {}
        }
        assert!(r.declared() <= 1 << 17 && r.pending() <= 8);
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use skynet_cluster::wire::{Address, RequestKind};

    /// A quick run of `check_wire` over real streams and random mutations of them (the libFuzzer
    /// target runs it for longer).
    #[test]
    fn wire_check_holds_on_mutated_streams() {
        let mut stream = Vec::new();
        for (i, n) in [10usize, 40_000, 70_000, 5].into_iter().enumerate() {
            let payload = vec![i as u8; n];
            wire::encode_request(
                &mut stream,
                Address::Id(7),
                i as u32 + 1,
                &payload,
                RequestKind::Call,
            )
            .unwrap();
        }
        assert_eq!(check_wire(&stream), 2);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut s = stream.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x % s.len() as u64) as usize;
                s[at] = (x >> 32) as u8;
            }
            check_wire(&s);
        }
    }
}
