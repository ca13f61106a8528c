//! skynet.pack codec benchmarks. Stock reference (lua-seri.c, same kind of VM):
//! skynet.pack tiny about 91 ns, 64 KiB string about 26.7 µs.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use skynet_cluster::seri::{decode, encode, encode_into, encode_str_into, Table, Value};

fn nested_table() -> Value {
    // Something like a game RPC argument: a record with a list of records.
    let item = |i: i64| {
        Value::Table(Table {
            array: vec![],
            hash: vec![
                ("id".into(), Value::Integer(1000 + i)),
                ("name".into(), format!("item-{i}").into()),
                ("count".into(), Value::Integer(i * 3)),
                ("price".into(), Value::Real(i as f64 * 1.25)),
                ("bound".into(), Value::Boolean(i % 2 == 0)),
            ],
        })
    };
    Value::Table(Table {
        array: vec![],
        hash: vec![
            ("uid".into(), Value::Integer(1_234_567_890_123)),
            ("nick".into(), "skynet player".into()),
            ("level".into(), Value::Integer(42)),
            ("items".into(), Value::Table(Table::from_array((0..16).map(item).collect()))),
            ("pos".into(), Value::Table(Table::from_array(vec![1.5.into(), (-2.25).into(), 0.into()]))),
        ],
    })
}

fn bench(c: &mut Criterion) {
    let s1k: Value = vec![b'a'; 1024].into();
    let s64k: Value = vec![b'b'; 64 * 1024].into();
    let cases: Vec<(&str, Vec<Value>)> = vec![
        ("tiny_int", vec![Value::Integer(42)]),
        ("tiny_mixed", vec!["PING".into(), Value::Integer(521), Value::Boolean(false)]),
        ("str_1k", vec![s1k]),
        ("str_64k", vec![s64k]),
        ("nested_table", vec![nested_table()]),
    ];

    let mut g = c.benchmark_group("seri_encode");
    for (name, values) in &cases {
        let len = encode(values).unwrap().len();
        g.throughput(Throughput::Bytes(len as u64));
        // Fresh Vec per call: what skynet.pack does (it returns a new buffer).
        g.bench_with_input(BenchmarkId::new("encode", name), values, |b, v| b.iter(|| encode(black_box(v)).unwrap()));
        // Reused buffer: the engine's path.
        let mut out = Vec::with_capacity(len);
        g.bench_with_input(BenchmarkId::new("encode_into", name), values, |b, v| {
            b.iter(|| {
                out.clear();
                encode_into(&mut out, black_box(v)).unwrap();
                black_box(out.len())
            })
        });
    }
    let raw = vec![b'b'; 64 * 1024];
    let mut out = Vec::with_capacity(raw.len() + 8);
    g.bench_function("encode_str_into/str_64k_borrowed", |b| {
        b.iter(|| {
            out.clear();
            encode_str_into(&mut out, black_box(&raw)).unwrap();
            black_box(out.len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("seri_decode");
    for (name, values) in &cases {
        let bytes = encode(values).unwrap();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("decode", name), &bytes, |b, bytes| {
            b.iter(|| decode(black_box(bytes)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
