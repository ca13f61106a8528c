//! A plain mutational fuzzer for `seri::decode` that needs neither libFuzzer nor nightly.
//!
//!     cargo run --release --bin fuzz_seri -- [SECONDS=60] [SEED]
//!
//! Seeds: messages built with `seri::encode`, plus every recorded stock message in
//! `$SKC_GOLDEN/seri.jsonl` (default `../../shared/golden` from this crate) up to 4 KiB.
//! Each round takes a corpus entry, applies a few structure-aware mutations and runs
//! [`skynet_cluster_fuzz::check_decode`] on it. Inputs whose outcome (error kind and position, or
//! value count) was never seen join the corpus. A panic saves the input under `artifacts/` and
//! exits 1. At the end it prints the number of executions.

use skynet_cluster::seri::{encode, Table, Value};
use skynet_cluster_fuzz::{check_decode, Outcome};
use std::collections::HashSet;
use std::panic;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MAX_LEN: usize = 64 * 1024;
const MAX_CORPUS: usize = 20_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

const INTERESTING_BYTES: &[u8] = &[
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0e, 0x12, 0x15, 0x1d, 0x22,
    0x25, 0x2a, 0x32, 0x3a, 0x42, 0x4a, 0x7f, 0x80, 0xf6, 0xfc, 0xfe, 0xff,
];
const INTERESTING_WORDS: &[u32] = &[
    0,
    1,
    30,
    31,
    32,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x10000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let rounds = 1 + rng.below(6);
    for _ in 0..rounds {
        let len = data.len();
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.byte();
            }
            2 if len > 0 => {
                let i = rng.below(len);
                data[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            }
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                for _ in 0..n {
                    data.insert(i, rng.byte());
                }
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                data.drain(i..i + n);
            }
            5 if len > 0 => data.truncate(rng.below(len)),
            6 if len > 1 => {
                let a = rng.below(len);
                let n = 1 + rng.below((len - a).min(64));
                let chunk = data[a..a + n].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, chunk);
            }
            7 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - a).min(128));
                    let at = rng.below(len + 1);
                    data.splice(at..at, other[a..a + n].iter().copied());
                }
            }
            8 if len > 0 => {
                let w = INTERESTING_WORDS[rng.below(INTERESTING_WORDS.len())].to_le_bytes();
                let width = [1usize, 2, 4][rng.below(3)];
                let i = rng.below(len);
                for (k, b) in w.iter().take(width).enumerate() {
                    if let Some(slot) = data.get_mut(i + k) {
                        *slot = *b;
                    }
                }
            }
            9 => {
                // Deep nesting: a run of one-element tables (0x0e) or hash tables (0x06).
                let i = rng.below(len + 1);
                let n = 1 + rng.below(48);
                let b = if rng.below(2) == 0 { 0x0e } else { 0x06 };
                data.splice(i..i, std::iter::repeat(b).take(n));
            }
            _ => {
                // A random type byte followed by a random interesting length.
                let i = rng.below(len + 1);
                let w = INTERESTING_WORDS[rng.below(INTERESTING_WORDS.len())].to_le_bytes();
                let tb = [0x15u8, 0x25, 0xfe, 0x1d][rng.below(4)];
                let mut v = vec![tb];
                v.extend_from_slice(&w);
                data.splice(i..i, v);
            }
        }
        data.truncate(MAX_LEN);
    }
}

fn built_seeds() -> Vec<Vec<u8>> {
    let nested = |n: usize| {
        let mut v = Value::Table(Table::new());
        for _ in 1..n {
            v = Value::Table(Table::from_array(vec![v, 1.into()]));
        }
        v
    };
    let sets: Vec<Vec<Value>> = vec![
        vec![],
        vec![Value::Nil, true.into(), false.into()],
        vec![
            0.into(),
            1.into(),
            300.into(),
            70_000.into(),
            (-5).into(),
            Value::Integer(1 << 40),
        ],
        vec![
            1.5.into(),
            f64::NAN.into(),
            Value::LightUserdata(0xdead_beef),
        ],
        vec![
            "".into(),
            "short".into(),
            vec![b'x'; 31].into(),
            vec![b'y'; 32].into(),
        ],
        vec![vec![b'z'; 70_000].into()],
        vec![Value::Table(Table::from_array(
            (0..40).map(Value::from).collect(),
        ))],
        vec![Value::Table(Table {
            array: vec!["a".into(), Value::Nil, 3.into()],
            hash: vec![
                ("k".into(), "v".into()),
                (2.5.into(), true.into()),
                (true.into(), 0.into()),
            ],
        })],
        vec![nested(8), nested(33)],
        vec![
            "echo".into(),
            42.into(),
            Value::Table(Table::from_pairs(vec![("x".into(), 1.into())])),
        ],
    ];
    sets.iter()
        .map(|s| encode(s).expect("seed encodes"))
        .collect()
}

fn golden_seeds() -> Vec<Vec<u8>> {
    let dir = std::env::var_os("SKC_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/golden"));
    let Ok(text) = std::fs::read_to_string(dir.join("seri.jsonl")) else {
        eprintln!(
            "fuzz_seri: no golden seri.jsonl under {}, built seeds only",
            dir.display()
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        for key in [
            "\"hex\": \"",
            "\"hex\":\"",
            "\"unpack_hex\": \"",
            "\"unpack_hex\":\"",
        ] {
            // Only the message-level fields (`hex` of a line, not of a typed value): these come
            // after the "values" array, so take the last occurrence.
            if let Some(p) = line.rfind(key) {
                let rest = &line[p + key.len()..];
                let hex = &rest[..rest.find('"').unwrap_or(0)];
                if hex.len() <= 8192 && hex.len() % 2 == 0 {
                    let bytes: Option<Vec<u8>> = (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                        .collect();
                    out.extend(bytes);
                }
            }
        }
    }
    out
}

/// Coarse feedback: the outcome with offsets, counts and lengths bucketed by powers of two, so
/// the corpus keeps inputs that reach new kinds of places rather than every new offset.
type Signature = (
    u8,
    Option<std::mem::Discriminant<skynet_cluster::seri::DecodeError>>,
    u32,
    u32,
);

fn signature(outcome: Outcome, len: usize) -> Signature {
    let bucket = |n: usize| usize::BITS - n.leading_zeros();
    match outcome {
        Outcome::Ok { values, shape } => (0, None, bucket(values) | shape << 8, bucket(len)),
        Outcome::Err { kind, offset } => (1, Some(kind), bucket(offset), bucket(len - offset)),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args
        .next()
        .map(|s| s.parse().expect("SECONDS"))
        .unwrap_or(60);
    let seed: u64 = args
        .next()
        .map(|s| s.parse().expect("SEED"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    let mut rng = Rng(seed);

    let mut corpus = built_seeds();
    let golden = golden_seeds();
    let n_golden = golden.len();
    corpus.extend(golden);
    let mut seen: HashSet<Signature> = HashSet::new();
    for c in &corpus {
        seen.insert(signature(check_decode(c), c.len()));
    }
    println!(
        "fuzz_seri: seed {seed}, {} seeds ({n_golden} from golden), running {seconds} s",
        corpus.len()
    );

    // Quiet the default hook; a failure is reported below with its input.
    panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    let deadline = Duration::from_secs(seconds);
    let mut execs: u64 = 0;
    let mut input = Vec::new();
    loop {
        if execs % 1024 == 0 && start.elapsed() >= deadline {
            break;
        }
        input.clear();
        if rng.below(64) == 0 {
            let n = rng.below(64);
            input.extend((0..n).map(|_| rng.byte()));
        } else {
            input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            mutate(&mut rng, &mut input, &corpus);
        }
        execs += 1;
        match panic::catch_unwind(|| check_decode(&input)) {
            Ok(outcome) => {
                if seen.insert(signature(outcome, input.len())) && corpus.len() < MAX_CORPUS {
                    corpus.push(input.clone());
                }
            }
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts");
                let _ = std::fs::create_dir_all(&dir);
                let path = dir.join(format!("seri-crash-{execs}.bin"));
                let _ = std::fs::write(&path, &input);
                eprintln!("fuzz_seri: FAILURE after {execs} executions: {msg}");
                eprintln!(
                    "input ({} bytes) saved to {}: {:02x?}",
                    input.len(),
                    path.display(),
                    &input[..input.len().min(256)]
                );
                std::process::exit(1);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz_seri: {execs} executions in {secs:.1} s ({:.0}/s), corpus {} entries, {} outcomes, 0 failures",
        execs as f64 / secs,
        corpus.len(),
        seen.len()
    );
}
