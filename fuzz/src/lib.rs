//! The property both fuzz drivers check on every input.

use skynet_cluster::seri::{decode, encode, EncodeError, Value};

/// Decode arbitrary bytes. It must not panic. An error must point inside the input. Accepted values
/// must re-encode (unless nested one level deeper than `encode` allows, which `decode` tolerates)
/// and decode back to themselves. Panics (the fuzzer's failure signal) when a check fails.
pub fn check_decode(data: &[u8]) -> Outcome {
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
