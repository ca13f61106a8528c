//! The wire codec against frames recorded from stock skynet:
//! * every frame of `golden/transcripts/*.jsonl` decodes, and re-encoding what was decoded
//!   gives the recorded bytes back;
//! * every `packrequest`/`packpush`/`packtrace`/`packresponse` result of `golden/core.jsonl`
//!   that the wire layer can express is reproduced byte for byte.

use serde_json::Value as Json;
use skynet_cluster::wire::{self, Address, Request, RequestKind, Response};

mod golden_util;
use golden_util::{golden, read_jsonl, unhex};

/// Re-encodes a decoded request frame body (with its prefix).
fn reencode_request(req: Request<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match req {
        Request::Single { addr, session, payload } => {
            wire::encode_request_single(&mut out, addr, session, payload).unwrap()
        }
        Request::MultiHeader { addr, session, total, push } => {
            let kind = if push { RequestKind::Push } else { RequestKind::Call };
            wire::encode_multi_header(&mut out, addr, session, total as usize, kind).unwrap()
        }
        Request::Part { session, data, last } => wire::encode_request_part(&mut out, session, data, last),
        Request::Trace { tag } => wire::encode_trace(&mut out, tag).unwrap(),
    }
    out
}

fn reencode_response(resp: Response<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match resp {
        Response::Error { session, msg } => {
            wire::encode_response_single(&mut out, session, wire::resp_type::ERROR, msg)
        }
        Response::Ok { session, payload } => {
            wire::encode_response_single(&mut out, session, wire::resp_type::OK, payload)
        }
        Response::MultiBegin { session, total } => wire::encode_response_begin(&mut out, session, total),
        Response::MultiPart { session, data, last } => wire::encode_response_part(&mut out, session, data, last),
    }
    out
}

#[test]
fn transcript_frames_decode_and_reencode_exactly() {
    let dir = golden().join("transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("golden transcripts {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 21, "all recorded scenarios present");
    let mut frames = 0;
    for file in &files {
        for line in read_jsonl(file).iter().skip(1) {
            let frame = unhex(line["hex"].as_str().unwrap());
            let (body, used) = wire::cut_frame(&frame).expect("whole frame");
            assert_eq!(used, frame.len());
            let again = match line["dir"].as_str().unwrap() {
                "c2s" => reencode_request(wire::decode_request(body).unwrap()),
                "s2c" => reencode_response(wire::decode_response(body).unwrap()),
                d => panic!("unknown dir {d}"),
            };
            assert_eq!(again, frame, "{}: frame re-encodes identically", file.display());
            frames += 1;
        }
    }
    assert_eq!(frames, 117);
}

/// One typed golden value as raw bytes (strings and msgs), integer, or absent.
fn bytes_of(v: &Json) -> Option<Vec<u8>> {
    match v["t"].as_str()? {
        "str" | "msg" => Some(unhex(v["hex"].as_str()?)),
        _ => None,
    }
}

#[test]
fn core_pack_results_are_reproduced() {
    let mut checked = 0;
    for case in read_jsonl(&golden().join("core.jsonl")) {
        if case["ok"] != Json::Bool(true) {
            continue;
        }
        let args = case["args"].as_array().unwrap();
        let ret = case["ret"].as_array().unwrap();
        let mut out = Vec::new();
        match case["fn"].as_str().unwrap() {
            f @ ("packrequest" | "packpush") => {
                // Only the straightforward argument forms: integer/string address, integer session.
                let addr = match args[0]["t"].as_str().unwrap() {
                    "int" => Address::Id(args[0]["v"].as_i64().unwrap() as u32),
                    "str" => Address::Name(Box::leak(unhex(args[0]["hex"].as_str().unwrap()).into_boxed_slice())),
                    _ => continue,
                };
                let Some(session) = args[1]["v"].as_i64().filter(|_| args[1]["t"] == "int") else {
                    continue;
                };
                let Some(payload) = bytes_of(&args[2]) else {
                    continue;
                };
                let session = session as i32 as u32;
                let kind = if f == "packpush" { RequestKind::Push } else { RequestKind::Call };
                wire::encode_request(&mut out, addr, session, &payload, kind).unwrap();
                let mut expected = bytes_of(&ret[0]).unwrap();
                if let Some(parts) = ret.get(2) {
                    for p in parts["v"].as_array().unwrap() {
                        expected.extend(bytes_of(p).unwrap());
                    }
                }
                assert_eq!(out, expected, "{}", case["id"]);
                assert_eq!(ret[1]["v"].as_i64().unwrap() as u32, wire::next_session(session), "{}", case["id"]);
            }
            "packtrace" => {
                let Some(tag) = bytes_of(&args[0]) else {
                    continue;
                };
                wire::encode_trace(&mut out, &tag).unwrap();
                assert_eq!(out, bytes_of(&ret[0]).unwrap(), "{}", case["id"]);
            }
            "packresponse" => {
                let Some(session) = args[0]["v"].as_i64().filter(|_| args[0]["t"] == "int") else {
                    continue;
                };
                let Some(payload) = bytes_of(&args[2]) else {
                    continue;
                };
                let ok = match &args[1] {
                    v if v["t"] == "bool" => v["v"].as_bool().unwrap(),
                    _ => continue,
                };
                let result = if ok { Ok(payload.as_slice()) } else { Err(payload.as_slice()) };
                wire::encode_response(&mut out, session as u32, result).unwrap();
                let expected = match ret[0]["t"].as_str().unwrap() {
                    "table" => ret[0]["v"].as_array().unwrap().iter().flat_map(|p| bytes_of(p).unwrap()).collect(),
                    _ => bytes_of(&ret[0]).unwrap(),
                };
                assert_eq!(out, expected, "{}", case["id"]);
            }
            _ => continue,
        }
        checked += 1;
    }
    assert!(checked > 150, "only {checked} pack cases checked");
}
