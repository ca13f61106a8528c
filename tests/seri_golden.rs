//! Replays ../shared/golden/seri.jsonl (recorded from stock skynet's lua-seri.c) against
//! `skynet_cluster::seri`. Golden directory: `$SKC_GOLDEN`, else `../shared/golden` next to the crate.

use serde_json::Value as Json;
use skynet_cluster::seri::{decode, encode, DecodeError, EncodeError, Table, Value};
use std::cmp::Ordering;

mod golden_util;
use golden_util::{golden, read_jsonl, unhex};

fn lines() -> Vec<Json> {
    read_jsonl(&golden().join("seri.jsonl"))
}

/// NaN as recorded: `0/0` on x86-64 is the negative quiet NaN.
const RECORDED_NAN: u64 = 0xfff8_0000_0000_0000;

/// A typed golden value, or `None` for a type the codec cannot carry (function, ...).
fn typed(j: &Json) -> Option<Value> {
    let t = j["t"].as_str().expect("typed value has t");
    Some(match t {
        "nil" => Value::Nil,
        "bool" => Value::Boolean(j["v"].as_bool().expect("bool")),
        "int" => Value::Integer(j["v"].as_i64().expect("int fits i64")),
        "num" => Value::Real(match &j["v"] {
            Json::String(s) => match s.as_str() {
                "nan" => f64::from_bits(RECORDED_NAN),
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                other => panic!("unknown float {other}"),
            },
            n => n.as_f64().expect("float"),
        }),
        "str" => Value::String(unhex(j["hex"].as_str().expect("str hex"))),
        "table" => {
            let pairs: Vec<(Value, Value)> = if let Some(kv) = j.get("kv") {
                kv.as_array()
                    .expect("kv")
                    .iter()
                    .map(|p| Some((typed(&p[0])?, typed(&p[1])?)))
                    .collect::<Option<_>>()?
            } else {
                j["v"]
                    .as_array()
                    .expect("v")
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Some((Value::Integer(i as i64 + 1), typed(v)?)))
                    .collect::<Option<_>>()?
            };
            Value::Table(lua_table(pairs))
        }
        _ => return None,
    })
}

/// Build the table lua-seri.c would see: the array part is `1..n` for the border `n` (all the
/// golden tables with integer keys are proper sequences from 1, so `n` is unambiguous), the rest
/// goes to the hash part in the order given.
fn lua_table(pairs: Vec<(Value, Value)>) -> Table {
    let mut n = 0i64;
    while pairs.iter().any(|(k, _)| *k == Value::Integer(n + 1)) {
        n += 1;
    }
    let mut array = vec![Value::Nil; n as usize];
    let mut hash = Vec::new();
    for (k, v) in pairs {
        match k {
            Value::Integer(i) if i >= 1 && i <= n => array[(i - 1) as usize] = v,
            k => hash.push((k, v)),
        }
    }
    Table { array, hash }
}

fn values(j: &Json) -> Option<Vec<Value>> {
    j.as_array().expect("value list").iter().map(typed).collect()
}

/// What a Lua table holding these pairs looks like: rawset in stream order (float keys with an
/// integer value become integers, nil values delete), keys in the golden canonical order
/// (numbers ascending, then strings bytewise, then false < true). Applied to every nested table,
/// so two values compare equal when `skynet.unpack` would give the same Lua structure.
fn canon(v: &Value) -> Value {
    let Value::Table(t) = v else { return v.clone() };
    let mut map: Vec<(Value, Value)> = Vec::new();
    let entries = t
        .array
        .iter()
        .enumerate()
        .map(|(i, v)| (Value::Integer(i as i64 + 1), v))
        .chain(t.hash.iter().map(|(k, v)| (k.clone(), v)));
    for (k, v) in entries {
        let k = match k {
            Value::Real(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Value::Integer(f as i64),
            k => canon(&k),
        };
        map.retain(|(old, _)| *old != k);
        if !v.is_nil() {
            map.push((k, canon(v)));
        }
    }
    map.sort_by(|(a, _), (b, _)| key_order(a, b));
    Value::Table(Table { array: vec![], hash: map })
}

fn key_order(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Integer(_) | Value::Real(_) => 0,
            Value::String(_) => 1,
            Value::Boolean(_) => 2,
            _ => 3,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        _ if rank(a) == 0 && rank(b) == 0 => {
            a.as_f64().unwrap().partial_cmp(&b.as_f64().unwrap()).unwrap_or(Ordering::Equal)
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

fn canon_all(vs: &[Value]) -> Vec<Value> {
    vs.iter().map(canon).collect()
}

/// Bytes must decode to exactly the recorded `decoded` values (as Lua structures).
fn check_decoded(id: &str, bytes: &[u8], decoded: &Json) -> Vec<Value> {
    let ours = decode(bytes).unwrap_or_else(|e| panic!("{id}: decode failed: {e}"));
    let want = values(decoded).unwrap_or_else(|| panic!("{id}: decoded has an untyped value"));
    assert_eq!(canon_all(&ours), canon_all(&want), "{id}: decoded structure differs");
    ours
}

#[test]
fn packed_values_match_stock_bytes() {
    let (mut exact, mut structural) = (0, 0);
    for line in lines().iter().filter(|l| l.get("hex").is_some()) {
        let id = line["id"].as_str().unwrap();
        let stock = unhex(line["hex"].as_str().unwrap());
        let vals = values(&line["values"]).unwrap_or_else(|| panic!("{id}: untyped value"));
        let ours = encode(&vals).unwrap_or_else(|e| panic!("{id}: encode failed: {e}"));
        if line["order_dependent"].as_bool().unwrap() {
            // Hash order follows Lua's next(): compare what both byte strings decode to.
            assert_eq!(ours.len(), stock.len(), "{id}: length differs");
            let a = decode(&ours).unwrap();
            let b = decode(&stock).unwrap();
            assert_eq!(canon_all(&a), canon_all(&b), "{id}: structure differs");
            assert_eq!(canon_all(&a), canon_all(&vals), "{id}: structure differs from values");
            structural += 1;
        } else {
            assert!(
                ours == stock,
                "{id}: bytes differ\n ours  {:02x?}\n stock {:02x?}",
                &ours[..ours.len().min(64)],
                &stock[..stock.len().min(64)]
            );
            exact += 1;
        }
    }
    assert_eq!(exact + structural, 79, "packed-value lines (README counts 79)");
    assert!(exact > 60, "only {exact} byte-exact cases");
}

#[test]
fn stock_bytes_decode_to_recorded_values_and_reencode_identically() {
    let mut n = 0;
    for line in lines().iter().filter(|l| l.get("hex").is_some()) {
        let id = line["id"].as_str().unwrap();
        let stock = unhex(line["hex"].as_str().unwrap());
        let ours = check_decoded(id, &stock, &line["decoded"]);
        // The value model keeps stream order, so stock's own bytes come back unchanged,
        // order-dependent tables included.
        assert!(encode(&ours).unwrap() == stock, "{id}: decode+encode is not the identity");
        n += 1;
    }
    assert_eq!(n, 79);
}

#[test]
fn pack_errors_are_errors_here() {
    let mut n = 0;
    for line in lines().iter().filter(|l| l.get("values").is_some() && l["ok"] == Json::Bool(false)) {
        let id = line["id"].as_str().unwrap();
        let err = line["err"].as_str().unwrap();
        match values(&line["values"]) {
            // A Lua function has no place in the value model: the type system refuses it.
            None => assert!(err.starts_with("Unsupport type"), "{id}: {err}"),
            Some(vals) => {
                let e = encode(&vals).expect_err(id);
                assert!(matches!(e, EncodeError::TooDeep { .. }), "{id}: {e:?}");
                assert_eq!(e.to_string(), err, "{id}: error text");
            }
        }
        n += 1;
    }
    assert_eq!(n, 2);
}

#[test]
fn unpack_cases_match_stock() {
    let (mut errors, mut accepted) = (0, 0);
    for line in lines().iter().filter(|l| l.get("unpack_hex").is_some()) {
        let id = line["id"].as_str().unwrap();
        let bytes = unhex(line["unpack_hex"].as_str().unwrap());
        if line["ok"].as_bool().unwrap() {
            check_decoded(id, &bytes, &line["decoded"]);
            accepted += 1;
        } else {
            let err = line["err"].as_str().unwrap();
            let e: DecodeError = decode(&bytes).expect_err(id);
            // Stock: "Invalid serialize stream <bytes left> (line:N)"; the count must agree.
            let stock_prefix = err.split(" (line:").next().unwrap();
            assert_eq!(e.stock_message(), stock_prefix, "{id}: {e}");
            errors += 1;
        }
    }
    assert_eq!(errors + accepted, 23, "unpack lines (README counts 23)");
    assert!(errors >= 20);
}
