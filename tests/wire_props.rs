//! Property tests of the wire codec: encode -> cut -> decode -> reassemble round trips, and
//! decoding arbitrary bytes never panics. The reassembler is the one the engine's read path
//! runs (there with its buffer pool and node budget, here with `Heap` and a test budget).

use proptest::prelude::*;
use skynet_cluster::wire::{
    self, Address, Begin, Heap, Part, Reassembler, ReassemblyBudget, ReassemblyError, Request, RequestKind, Response,
    MULTI_PART,
};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Debug, Clone)]
enum OwnedAddr {
    Id(u32),
    Name(Vec<u8>),
}

impl OwnedAddr {
    fn borrow(&self) -> Address<'_> {
        match self {
            OwnedAddr::Id(id) => Address::Id(*id),
            OwnedAddr::Name(n) => Address::Name(n),
        }
    }
}

fn addr_strategy() -> impl Strategy<Value = OwnedAddr> {
    prop_oneof![
        any::<u32>().prop_map(OwnedAddr::Id),
        prop::collection::vec(any::<u8>(), 1..=255).prop_map(OwnedAddr::Name),
    ]
}

/// Payload sizes clustered around the multi-part boundaries, up to 200 KiB.
fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![
        0usize..64,
        (MULTI_PART - 8)..(MULTI_PART + 8),
        (2 * MULTI_PART - 8)..(2 * MULTI_PART + 8),
        0usize..200 * 1024,
    ];
    (len, any::<u8>()).prop_map(|(n, seed)| (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect())
}

fn session_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..=wire::MAX_SESSION, (wire::MAX_SESSION - 3)..=wire::MAX_SESSION]
}

/// What the receiving side of a request stream ends up with.
#[derive(Debug, PartialEq)]
struct Delivered {
    addr: Vec<u8>,
    session: u32,
    push: bool,
    payload: Vec<u8>,
}

fn addr_key(a: Address<'_>) -> Vec<u8> {
    match a {
        Address::Id(id) => id.to_le_bytes().to_vec(),
        Address::Name(n) => [b"@".as_slice(), n].concat(),
    }
}

/// A minimal receiver: cuts the stream into frames and reassembles per session.
fn receive_requests(stream: &[u8]) -> Vec<Delivered> {
    let mut out = Vec::new();
    let mut parts: Reassembler<(Vec<u8>, bool)> = Reassembler::new(usize::MAX, 1024);
    let mut cutter = wire::FrameCutter::new(stream);
    for body in cutter.by_ref() {
        match wire::decode_request(body).expect("our own frames decode") {
            Request::Single { addr, session, payload } => {
                out.push(Delivered { addr: addr_key(addr), session, push: session == 0, payload: payload.to_vec() })
            }
            Request::MultiHeader { addr, session, total, push } => {
                assert_eq!(parts.begin(session, total, (addr_key(addr), push)), Ok(Begin::Joining))
            }
            Request::Part { session, data, last } => match parts.part(session, data, last, &Heap).unwrap() {
                Part::Done((addr, push), payload) => out.push(Delivered { addr, session, push, payload }),
                Part::More => {}
                other => panic!("our own frames join: {other:?}"),
            },
            Request::Trace { .. } => panic!("no trace frames sent"),
        }
    }
    assert_eq!(cutter.consumed(), stream.len(), "stream ends on a frame boundary");
    assert_eq!(parts.pending(), 0);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn request_round_trip(addr in addr_strategy(), session in session_strategy(), payload in payload_strategy(), push in any::<bool>()) {
        let kind = if push { RequestKind::Push } else { RequestKind::Call };
        let mut stream = Vec::new();
        wire::encode_request(&mut stream, addr.borrow(), session, &payload, kind).unwrap();
        let multi = payload.len() >= MULTI_PART;
        let frames = wire::FrameCutter::new(&stream).count();
        prop_assert_eq!(frames, if multi { 1 + payload.len().div_ceil(MULTI_PART) } else { 1 });
        let got = receive_requests(&stream);
        prop_assert_eq!(got.len(), 1);
        let d = &got[0];
        prop_assert_eq!(&d.addr, &addr_key(addr.borrow()));
        prop_assert_eq!(&d.payload, &payload);
        prop_assert_eq!(d.push, push);
        // A single-frame push writes session 0; a multi-part push carries its session.
        let expected_session = if push && !multi { 0 } else { session };
        prop_assert_eq!(d.session, expected_session);
    }

    #[test]
    fn interleaved_multipart_reassembles_per_session(a in payload_strategy(), b in payload_strategy()) {
        // Two multi-part requests whose frames alternate on the wire, as stock's low-priority
        // writes produce.
        let a = if a.len() < MULTI_PART { [a.as_slice(), &vec![1u8; MULTI_PART]].concat() } else { a };
        let b = if b.len() < MULTI_PART { [b.as_slice(), &vec![2u8; MULTI_PART]].concat() } else { b };
        let mut fa = Vec::new();
        let mut fb = Vec::new();
        wire::encode_request(&mut fa, Address::Id(7), 10, &a, RequestKind::Call).unwrap();
        wire::encode_request(&mut fb, Address::Name(b"echo"), 11, &b, RequestKind::Call).unwrap();
        let fa: Vec<&[u8]> = frames_with_prefix(&fa);
        let fb: Vec<&[u8]> = frames_with_prefix(&fb);
        let mut stream = Vec::new();
        for i in 0..fa.len().max(fb.len()) {
            if let Some(f) = fa.get(i) { stream.extend_from_slice(f); }
            if let Some(f) = fb.get(i) { stream.extend_from_slice(f); }
        }
        let mut got = receive_requests(&stream);
        got.sort_by_key(|d| d.session);
        prop_assert_eq!(got.len(), 2);
        prop_assert_eq!(&got[0].payload, &a);
        prop_assert_eq!(&got[1].payload, &b);
    }

    #[test]
    fn response_round_trip(session in any::<u32>(), payload in payload_strategy(), ok in any::<bool>()) {
        let mut stream = Vec::new();
        let result = if ok { Ok(payload.as_slice()) } else { Err(payload.as_slice()) };
        wire::encode_response(&mut stream, session, result).unwrap();
        let mut whole: Option<(bool, Vec<u8>)> = None;
        let mut parts: Reassembler<()> = Reassembler::new(usize::MAX, 4);
        let mut frames = 0;
        for body in wire::FrameCutter::new(&stream) {
            frames += 1;
            let r = wire::decode_response(body).unwrap();
            prop_assert_eq!(r.session(), session);
            match r {
                Response::Ok { payload, .. } => whole = Some((true, payload.to_vec())),
                Response::Error { msg, .. } => whole = Some((false, msg.to_vec())),
                Response::MultiBegin { total, .. } => prop_assert_eq!(parts.begin(session, total, ()), Ok(Begin::Joining)),
                Response::MultiPart { data, last, .. } => match parts.part(session, data, last, &Heap).unwrap() {
                    Part::Done((), p) => whole = Some((true, p)),
                    Part::More => {}
                    other => panic!("our own frames join: {other:?}"),
                },
            }
        }
        let multi = ok && payload.len() > MULTI_PART;
        prop_assert_eq!(frames, if multi { 1 + payload.len().div_ceil(MULTI_PART) } else { 1 });
        let expected = if ok { payload.clone() } else { payload[..payload.len().min(MULTI_PART)].to_vec() };
        prop_assert_eq!(whole, Some((ok, expected)));
    }

    #[test]
    fn decoding_random_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = wire::decode_request(&body);
        let _ = wire::decode_response(&body);
        let mut r: Reassembler<()> = Reassembler::new(1 << 20, 8);
        for frame in wire::FrameCutter::new(&body) {
            if let Ok(Request::MultiHeader { session, total, .. }) = wire::decode_request(frame) {
                let _ = r.begin(session, total, ());
            }
            if let Ok(Request::Part { session, data, last }) = wire::decode_request(frame) {
                let _ = r.part(session, data, last, &Heap);
            }
        }
    }

    #[test]
    fn truncated_frames_are_errors(addr in addr_strategy(), session in session_strategy(), cut in 1usize..12) {
        // A single request with an empty payload, cut short inside its fixed header.
        let mut frame = Vec::new();
        wire::encode_request(&mut frame, addr.borrow(), session, b"", RequestKind::Call).unwrap();
        let body = &frame[2..];
        let keep = body.len().saturating_sub(cut);
        if keep < body.len() {
            prop_assert!(wire::decode_request(&body[..keep]).is_err());
        }
    }
}

fn frames_with_prefix(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some((_, used)) = wire::cut_frame(rest) {
        out.push(&rest[..used]);
        rest = &rest[used..];
    }
    out
}

#[test]
fn session_wrap() {
    assert_eq!(wire::next_session(1), 2);
    assert_eq!(wire::next_session(0x7fff_fffe), 0x7fff_ffff);
    assert_eq!(wire::next_session(0x7fff_ffff), 1);
}

#[test]
fn malformed_request_errors_match_stock_text() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "Invalid req package. size == 0"),
        (b"\x00\x01", "Invalid cluster message (size=2)"),
        (b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "Invalid cluster message size 12 (multi req must be 13)"),
        (b"\x02\x00", "Invalid cluster multi part message"),
        (b"\x80", "Invalid cluster message (size=1)"),
        (b"\x80\x05abc", "Invalid cluster message (size=5)"),
        (b"\xff", "Invalid req package type -1"),
        (b"\x82", "Invalid req package type -126"),
        (b"\x05", "Invalid req package type 5"),
    ];
    for (body, text) in cases {
        assert_eq!(wire::decode_request(body).unwrap_err().to_string(), *text, "body {body:02x?}");
    }
}

#[test]
fn reassembly_limits() {
    let mut r: Reassembler<u8> = Reassembler::new(100, 1);
    assert!(matches!(r.begin(1, 101, 0), Err(ReassemblyError::TooLarge { .. })));
    assert_eq!(r.begin(1, 10, 0), Ok(Begin::Joining));
    assert_eq!(r.begin(2, 10, 0), Err(ReassemblyError::TooManyPending(1)));
    // What stock answers and survives: a lone last part, parts past the declared size, a
    // last part short of it.
    assert_eq!(r.part(3, b"x", true, &Heap), Ok(Part::Orphan));
    assert_eq!(r.part(1, &[0; 11], false, &Heap), Ok(Part::More));
    assert_eq!(r.declared(), 0, "an overflow spoils the message and frees what it declared");
    assert_eq!(r.part(1, b"", true, &Heap), Ok(Part::Invalid(Some(0))));
    assert_eq!(r.pending(), 0);
    r.begin(1, 10, 0).unwrap();
    assert_eq!(r.part(1, &[0; 9], true, &Heap), Ok(Part::Invalid(Some(0))));
    r.begin(1, 4, 9).unwrap();
    assert_eq!(r.part(1, b"ab", false, &Heap), Ok(Part::More));
    assert_eq!(r.part(1, b"cd", true, &Heap), Ok(Part::Done(9, b"abcd".to_vec())));
}

/// A budget shared by reassemblers, as the engine's node-wide one.
struct Shared {
    used: AtomicUsize,
    limit: usize,
}

impl ReassemblyBudget for Shared {
    fn try_take(&self, n: usize) -> bool {
        self.used.fetch_update(Relaxed, Relaxed, |u| u.checked_add(n).filter(|&t| t <= self.limit)).is_ok()
    }
    fn give(&self, n: usize) {
        let prev = self.used.fetch_sub(n, Relaxed);
        assert!(prev >= n, "budget given back more than taken");
    }
}

/// One step a peer may take on a link: a header, a part, or a part read in place.
#[derive(Debug, Clone)]
enum Op {
    Begin { session: u32, total: u32 },
    Part { session: u32, len: usize, last: bool },
    Direct { session: u32, len: usize, last: bool },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let session = 1u32..5;
    prop_oneof![
        (session.clone(), 0u32..300).prop_map(|(session, total)| Op::Begin { session, total }),
        (session.clone(), 0usize..120, any::<bool>()).prop_map(|(session, len, last)| Op::Part { session, len, last }),
        (session, 0usize..120, any::<bool>()).prop_map(|(session, len, last)| Op::Direct { session, len, last }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Whatever a peer sends (duplicate headers, parts with no header, sizes that do not add
    /// up), two links sharing a budget never panic, never hand out more than declared, keep
    /// the budget equal to what they declare, and give it all back when they go.
    #[test]
    fn any_sequence_keeps_the_books(a in prop::collection::vec(op_strategy(), 0..60), b in prop::collection::vec(op_strategy(), 0..60)) {
        let budget = Arc::new(Shared { used: AtomicUsize::new(0), limit: 400 });
        let mut links: [Reassembler<u32, Arc<Shared>>; 2] =
            [Reassembler::with_budget(250, 3, budget.clone()), Reassembler::with_budget(250, 3, budget.clone())];
        let mut totals: std::collections::HashMap<(usize, u32), u32> = Default::default();
        for (i, op) in a.iter().map(|o| (0usize, o)).chain(b.iter().map(|o| (1usize, o))) {
            let r = &mut links[i];
            match *op {
                Op::Begin { session, total } => {
                    if let Ok(Begin::Joining) = r.begin(session, total, total) {
                        totals.insert((i, session), total);
                    }
                }
                Op::Part { session, len, last } => {
                    if let Ok(Part::Done(total, p)) = r.part(session, &vec![7; len], last, &Heap) {
                        prop_assert_eq!(p.len(), total as usize);
                        prop_assert_eq!(totals.remove(&(i, session)), Some(total));
                    }
                }
                Op::Direct { session, len, last } => {
                    if let Some((buf, total)) = r.direct(session, len, last, &Heap) {
                        prop_assert!(buf.len() + len <= total && buf.capacity() >= total);
                        buf.extend(std::iter::repeat_n(7, len));
                        if last {
                            let (total, p) = r.take_full(session).expect("a last part read in place completes it");
                            prop_assert_eq!(p.len(), total as usize);
                        }
                    }
                }
            }
            prop_assert!(r.declared() <= 250);
            prop_assert_eq!(budget.used.load(Relaxed), links[0].declared() + links[1].declared());
        }
        drop(links);
        prop_assert_eq!(budget.used.load(Relaxed), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The part-header decoders (which the engine's read path uses to read a part's data in
    /// place before its frame is whole) agree with the frame decoders on every frame.
    #[test]
    fn part_header_decoders_agree_with_the_frame_decoders(
        kind in prop::sample::select(vec![0u8, 1, 2, 3, 4, 5, 0x80]),
        session in any::<u32>(),
        data in prop::collection::vec(any::<u8>(), 0..40),
        cut in 0usize..50,
    ) {
        // A request frame of that type byte, and a response frame whose type byte is `kind`.
        let mut req = vec![kind];
        req.extend_from_slice(&session.to_le_bytes());
        req.extend_from_slice(&data);
        let mut resp = session.to_le_bytes().to_vec();
        resp.push(kind);
        resp.extend_from_slice(&data);
        for (body, is_req) in [(req, true), (resp, false)] {
            let mut frame = (body.len() as u16).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            let full = if is_req {
                match wire::decode_request(&body) {
                    Ok(Request::Part { session, data, last }) => Some((session, data.len(), last)),
                    _ => None,
                }
            } else {
                match wire::decode_response(&body) {
                    Ok(Response::MultiPart { session, data, last }) => Some((session, data.len(), last)),
                    _ => None,
                }
            };
            let head = |b: &[u8]| {
                let h = if is_req { wire::decode_request_part_header(b) } else { wire::decode_response_part_header(b) };
                h.map(|h| (h.session, h.len, h.last))
            };
            prop_assert_eq!(head(&frame), full);
            // Only the 7-byte head is read: the frame may be cut anywhere after it.
            let keep = cut.min(frame.len());
            if keep >= wire::PART_HEADER {
                prop_assert_eq!(head(&frame[..keep]), full);
            } else {
                prop_assert_eq!(head(&frame[..keep]), None);
            }
        }
    }
}
