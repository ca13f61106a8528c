//! Property tests for the skynet.pack codec: round trips of random nested values, and random or
//! mutated bytes that must never panic the decoder.

use proptest::prelude::*;
use skynet_cluster::seri::{decode, encode, encode_into, encoded_len, DecodeError, EncodeError, Table, Value};

fn integer() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        -300i64..70_000,
        prop::sample::select(vec![
            0,
            255,
            256,
            65_535,
            65_536,
            i64::from(i32::MAX),
            i64::from(i32::MAX) + 1,
            i64::from(i32::MIN),
            i64::from(i32::MIN) - 1,
            i64::MAX,
            i64::MIN,
        ]),
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::collection::vec(any::<u8>(), 250..300),
        1 => (prop::sample::select(vec![65_535usize, 65_536, 65_537]), any::<u8>())
            .prop_map(|(n, b)| vec![b; n]),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        integer().prop_map(Value::Integer),
        // Any bit pattern: NaNs with payloads, infinities, -0.0, subnormals.
        any::<u64>().prop_map(|b| Value::Real(f64::from_bits(b))),
        bytes().prop_map(Value::String),
        any::<usize>().prop_map(Value::LightUserdata),
    ]
}

/// Keys that a Lua table can hold (no nil, no NaN).
fn key(inner: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    inner.prop_filter("nil or NaN key", |k| match k {
        Value::Nil => false,
        Value::Real(f) => !f.is_nan(),
        _ => true,
    })
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 200, 40, |inner| {
        (prop::collection::vec(inner.clone(), 0..40), prop::collection::vec((key(inner.clone()), inner), 0..6))
            .prop_map(|(array, hash)| Value::Table(Table { array, hash }))
    })
}

fn nest(levels: usize, inner: Table) -> Value {
    let mut v = Value::Table(inner);
    for _ in 1..levels {
        v = Value::Table(Table { array: vec![], hash: vec![("k".into(), v)] });
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip(values in prop::collection::vec(value(), 0..5)) {
        let bytes = encode(&values).unwrap();
        prop_assert_eq!(encoded_len(&values), Ok(bytes.len()));
        prop_assert_eq!(decode(&bytes).unwrap(), values.clone());
        // encode_into appends after existing content and agrees with encode.
        let mut out = b"prefix".to_vec();
        encode_into(&mut out, &values).unwrap();
        prop_assert_eq!(&out[6..], &bytes[..]);
    }

    #[test]
    fn every_prefix_of_a_message_is_an_error_or_fewer_values(values in prop::collection::vec(value(), 1..4)) {
        let bytes = encode(&values).unwrap();
        for cut in 0..bytes.len().min(200) {
            match decode(&bytes[..cut]) {
                Ok(vs) => prop_assert!(vs.len() < values.len() || cut == bytes.len()),
                Err(DecodeError::Truncated { at, .. }) => prop_assert_eq!(at.offset + at.remaining, cut),
                Err(e) => prop_assert!(false, "prefix {} gave {:?}", cut, e),
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_hostile(&bytes)?;
    }

    #[test]
    fn mutated_messages_never_panic(
        values in prop::collection::vec(value(), 1..4),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    ) {
        let mut bytes = encode(&values).unwrap();
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes[i] ^= 1 << (byte & 7),
                2 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
        }
        check_hostile(&bytes)?;
    }

    #[test]
    fn nesting_limits(levels in 1usize..40, with_content in any::<bool>()) {
        let inner = if with_content { Table::from_array(vec![1.into()]) } else { Table::new() };
        let v = nest(levels, inner);
        // Stock packs a value inside at most MAX_DEPTH (32) tables.
        let deepest = if with_content { levels } else { levels - 1 };
        let len = encoded_len(std::slice::from_ref(&v));
        match encode(std::slice::from_ref(&v)) {
            Ok(bytes) => {
                prop_assert_eq!(len, Ok(bytes.len()));
                prop_assert!(deepest <= 32);
                prop_assert_eq!(decode(&bytes).unwrap(), vec![v]);
            }
            Err(EncodeError::TooDeep { .. }) => prop_assert!(deepest > 32),
            Err(e) => prop_assert!(false, "{:?}", e),
        }
    }
}

/// Whatever the decoder makes of hostile bytes, it must not panic; what it accepts must re-encode
/// (unless it sits one level deeper than encode allows) and decode back to itself.
fn check_hostile(bytes: &[u8]) -> Result<(), TestCaseError> {
    match decode(bytes) {
        Ok(values) => match encode(&values) {
            Ok(again) => prop_assert_eq!(decode(&again).unwrap(), values),
            Err(EncodeError::TooDeep { .. }) => {}
            Err(e) => prop_assert!(false, "decoded values do not re-encode: {:?}", e),
        },
        Err(e) => {
            prop_assert!(e.offset() + e.remaining() == bytes.len());
            prop_assert!(!e.to_string().is_empty());
        }
    }
    Ok(())
}
