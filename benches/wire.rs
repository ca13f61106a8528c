//! Criterion benchmarks of the wire codec (not tests: figures go in the notes).
//! Run: `cargo bench --bench wire`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use skynet_cluster::wire::{self, Address, Begin, Heap, Part, Reassembler, Request, RequestKind};

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire_encode_request");
    for size in [16usize, 1024, 32 * 1024, 64 * 1024, 1024 * 1024] {
        let payload = vec![7u8; size];
        let mut out = Vec::with_capacity(size + 1024);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| {
                out.clear();
                wire::encode_request(&mut out, Address::Name(b"@echo"), 42, black_box(p), RequestKind::Call).unwrap();
                black_box(out.len())
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("wire_encode_response");
    for size in [16usize, 64 * 1024] {
        let payload = vec![7u8; size];
        let mut out = Vec::with_capacity(size + 1024);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| {
                out.clear();
                wire::encode_response(&mut out, 42, Ok(black_box(p))).unwrap();
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire_decode_request");
    for size in [16usize, 64 * 1024] {
        let payload = vec![7u8; size];
        let mut stream = Vec::new();
        wire::encode_request(&mut stream, Address::Id(9), 42, &payload, RequestKind::Call).unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("cut_decode_reassemble", size), &stream, |b, s| {
            b.iter(|| {
                let mut r: Reassembler<()> = Reassembler::new(1 << 24, 4);
                let mut got = 0usize;
                for body in wire::FrameCutter::new(black_box(s)) {
                    match wire::decode_request(body).unwrap() {
                        Request::Single { payload, .. } => got += payload.len(),
                        Request::MultiHeader { session, total, .. } => {
                            assert_eq!(r.begin(session, total, ()), Ok(Begin::Joining))
                        }
                        Request::Part { session, data, last } => {
                            if let Part::Done((), p) = r.part(session, data, last, &Heap).unwrap() {
                                got += p.len();
                            }
                        }
                        Request::Trace { .. } => {}
                    }
                }
                black_box(got)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
