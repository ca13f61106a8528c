//! Engine to engine over real TCP on 127.0.0.1: sizes, pushes, queries, trace, errors,
//! concurrency, many links, session wrap, timeouts.

mod engine_util;
use engine_util::*;
use skynet_cluster::engine::{Address, CallError, CallOpts, Config, Node};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn every_size_class_round_trips() {
    let (_s, addr, _) = server(Config::default());
    let c = client(Config::default(), &addr);
    for (i, n) in [0usize, 1, 32767, 32768, 32769, 65536, 100000, 1 << 20].into_iter().enumerate() {
        let p = pattern(n, i as u8);
        let r = c.call("srv", Address::Name(b"@echo"), &p, GUARD).unwrap();
        assert_eq!(r.len(), n);
        assert!(r == p, "size {n}");
        let r = c.call("srv", Address::Id(ECHO), &p, GUARD).unwrap();
        assert!(r == p, "size {n} numeric");
    }
    let st = c.stats("srv").unwrap();
    assert_eq!(st.calls, 16);
    assert_eq!(st.latency_count, 16);
    assert_eq!(st.connects, 1);
}

/// `batch_deferred`: what the scope queued is written when the returned `Deferred` is
/// flushed, here from another thread, or dropped; inside an outer scope it returns
/// nothing and the outer scope writes.
#[test]
fn deferred_batches_are_written_by_flush_or_drop() {
    let (_s, addr, seen) = server(Config::default());
    let c = client(Config::default(), &addr);
    assert_eq!(c.call("srv", Address::Id(ECHO), b"up", GUARD).unwrap(), b"up");
    let ((), d) = skynet_cluster::engine::batch_deferred(|| {
        for _ in 0..100 {
            c.push("srv", Address::Id(SINK), b"d").unwrap();
        }
    });
    assert!(!d.is_empty());
    std::thread::spawn(move || d.flush()).join().unwrap();
    wait_until(|| seen.pushes.load(Ordering::SeqCst) == 100);
    let ((), d) = skynet_cluster::engine::batch_deferred(|| c.push("srv", Address::Id(SINK), b"e").unwrap());
    drop(d);
    wait_until(|| seen.pushes.load(Ordering::SeqCst) == 101);
    let inner =
        c.batch(|| skynet_cluster::engine::batch_deferred(|| c.push("srv", Address::Id(SINK), b"f").unwrap()).1);
    assert!(inner.is_empty(), "the outer scope owns the write");
    wait_until(|| seen.pushes.load(Ordering::SeqCst) == 102);
    // per-link order holds across all of it
    assert_eq!(c.call("srv", Address::Id(SINK), b"", GUARD).unwrap(), b"102");
}

#[test]
fn non_at_names_reach_the_service() {
    let (_s, addr, seen) = server(Config::default());
    let c = client(Config::default(), &addr);
    assert_eq!(c.call("srv", Address::Name(b".echo"), b"x", GUARD).unwrap(), b"x");
    assert_eq!(seen.names.lock().as_slice(), &[b".echo".to_vec()]);
}

#[test]
fn pushes_arrive_in_order_before_a_later_call() {
    let (_s, addr, seen) = server(Config::default());
    let c = client(Config::default(), &addr);
    let sizes = [0usize, 1, 100, 32767, 32768, 70000];
    for (i, n) in sizes.iter().enumerate() {
        c.push("srv", Address::Name(b"@sink"), &pattern(*n, i as u8)).unwrap();
    }
    // Per-link ordering: the call is served after every push above.
    let r = c.call("srv", Address::Name(b"@sink"), b"", GUARD).unwrap();
    assert_eq!(r, sizes.len().to_string().as_bytes());
    assert_eq!(seen.push_bytes.load(Ordering::SeqCst), sizes.iter().sum::<usize>() as u64);
    // Batched pushes: many frames per write.
    c.batch(|| {
        for _ in 0..1000 {
            c.push("srv", Address::Id(SINK), b"p").unwrap();
        }
    });
    let r = c.call("srv", Address::Id(SINK), b"", GUARD).unwrap();
    assert_eq!(r, (sizes.len() + 1000).to_string().as_bytes());
    assert_eq!(c.stats("srv").unwrap().pushes, 1006);
}

#[test]
fn query_answers_packed_address_or_name_not_found() {
    let (_s, addr, _) = server(Config::default());
    let c = client(Config::default(), &addr);
    assert_eq!(c.query("srv", "echo", GUARD).unwrap(), ECHO);
    assert_eq!(c.query("srv", "sink", GUARD).unwrap(), SINK);
    assert_eq!(c.query("srv", "nosuch", GUARD), Err(CallError::Remote(b"name not found".to_vec())));
}

#[test]
fn serving_side_errors() {
    let (_s, addr, _) = server(Config::default());
    let c = client(Config::default(), &addr);
    assert_eq!(c.call("srv", Address::Id(FAIL), b"", GUARD), Err(CallError::Remote(b"boom".to_vec())));
    assert_eq!(c.call("srv", Address::Name(b"@nosuch"), b"", GUARD), Err(CallError::Remote(b"Invalid name".to_vec())));
    assert_eq!(c.call("srv", Address::Id(DROP), b"", GUARD), Err(CallError::Remote(b"no response".to_vec())));
    // Answered later from another thread.
    assert_eq!(c.call("srv", Address::Id(LATER), b"abc", GUARD).unwrap(), b"abc");
    // The link survived all of it.
    assert_eq!(c.stats("srv").unwrap().connects, 1);
    assert!(c.call("srv", Address::Name(b""), b"", GUARD).is_err());
}

#[test]
fn trace_tag_goes_before_the_request() {
    let (_s, addr, seen) = server(Config::default());
    let c = client(Config { nodename: Some("tester42".into()), ..Config::default() }, &addr);
    c.call("srv", Address::Id(ECHO), b"a", GUARD).unwrap(); // session 1
    let opts = CallOpts { timeout: GUARD, trace: Some(b":00000008-1") };
    c.call_opts("srv", Address::Id(ECHO), b"b", opts).unwrap(); // session 2, tag names 3 as stock
    let big = pattern(40000, 3);
    c.call_opts("srv", Address::Id(ECHO), &big, opts).unwrap(); // session 3, multi-part
    let pre = CallOpts { timeout: GUARD, trace: Some(b"(already)x") };
    c.call_opts("srv", Address::Id(ECHO), b"c", pre).unwrap();
    c.call("srv", Address::Id(ECHO), b"d", GUARD).unwrap();
    assert_eq!(
        seen.traces.lock().as_slice(),
        &[b"(tester42-srv-3):00000008-1".to_vec(), b"(tester42-srv-4):00000008-1".to_vec(), b"(already)x".to_vec()]
    );
}

#[test]
fn concurrent_calls_on_one_link() {
    let (_s, addr, _) = server(Config::default());
    let c = client(Config::default(), &addr);
    let h = c.handle();
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..100usize {
                    let n = if i % 25 == 0 { 40000 + i } else { i * 7 + t as usize };
                    let p = pattern(n, t.wrapping_add(i as u8));
                    assert!(h.call("srv", Address::Id(ECHO), &p, GUARD).unwrap() == p);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Callback calls, many outstanding at once on the same link.
    let (tx, rx) = mpsc::channel();
    for i in 0..500usize {
        let tx = tx.clone();
        let p = pattern(i, 9);
        let want = p.clone();
        c.call_with("srv", Address::Id(ECHO), &p, CallOpts { timeout: GUARD, trace: None }, move |r| {
            tx.send(r.unwrap().as_slice() == want.as_slice()).unwrap();
        })
        .unwrap();
    }
    for _ in 0..500 {
        assert!(rx.recv_timeout(Duration::from_secs(30)).unwrap());
    }
    assert_eq!(c.stats("srv").unwrap().connects, 1);
}

#[test]
fn many_links_at_once() {
    let (_s, addr, _) = server(Config::default());
    let c = Node::new(Config::default()).unwrap();
    let names: Vec<String> = (0..16).map(|i| format!("n{i}")).collect();
    let map: Vec<(&str, Option<&str>)> = names.iter().map(|n| (n.as_str(), Some(addr.as_str()))).collect();
    c.reload(&map);
    let others: Vec<Node> = (0..8).map(|_| client(Config::default(), &addr)).collect();
    let h = c.handle();
    let t = std::thread::spawn(move || {
        for (i, n) in names.iter().enumerate() {
            let p = pattern(i * 1000, i as u8);
            assert!(h.call(n, Address::Id(ECHO), &p, GUARD).unwrap() == p);
        }
    });
    for (i, o) in others.iter().enumerate() {
        assert_eq!(o.call("srv", Address::Id(ECHO), &[i as u8], GUARD).unwrap(), [i as u8]);
    }
    t.join().unwrap();
    assert_eq!(_s.inbound_stats().connects, 24);
}

#[test]
fn sessions_wrap_and_multi_push_consumes_one() {
    let (_s, addr, _) = server(Config::default());
    let c = client(Config { first_session: 0x7fff_fffe, ..Config::default() }, &addr);
    c.call("srv", Address::Id(ECHO), b"1", GUARD).unwrap();
    assert_eq!(c.next_session("srv"), Some(0x7fff_ffff));
    c.call("srv", Address::Id(ECHO), &pattern(50000, 1), GUARD).unwrap();
    assert_eq!(c.next_session("srv"), Some(1));
    c.push("srv", Address::Id(SINK), b"small").unwrap();
    assert_eq!(c.next_session("srv"), Some(1), "single push uses no session");
    c.push("srv", Address::Id(SINK), &pattern(32768, 2)).unwrap();
    assert_eq!(c.next_session("srv"), Some(2), "multi-part push uses one");
    assert_eq!(c.call("srv", Address::Id(SINK), b"", GUARD).unwrap(), b"2");
    assert_eq!(c.next_session("srv"), Some(3));
}

#[test]
fn timeouts_blocking_and_callback() {
    let (_s, addr, seen) = server(Config::default());
    let c = client(Config::default(), &addr);
    let t = Some(Duration::from_millis(50));
    assert_eq!(c.call("srv", Address::Id(HOLD), b"", t), Err(CallError::Timeout));
    let (tx, rx) = mpsc::channel();
    c.call_with("srv", Address::Id(HOLD), b"", CallOpts { timeout: t, trace: None }, move |r| {
        tx.send(r.err()).unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), Some(CallError::Timeout));
    // A late answer to a timed-out call is dropped; the link keeps working.
    wait_until(|| seen.held.lock().len() == 2);
    for r in seen.held.lock().drain(..) {
        r.ok(b"late");
    }
    assert_eq!(c.call("srv", Address::Id(ECHO), b"ok", GUARD).unwrap(), b"ok");
    let st = c.stats("srv").unwrap();
    assert_eq!(st.timeouts, 2);
    assert_eq!(st.connects, 1);
}

#[test]
fn blocking_call_from_io_thread_is_refused() {
    let (_s, addr, _) = server(Config::default());
    let c = client(Config::default(), &addr);
    let h = c.handle();
    let (tx, rx) = mpsc::channel();
    c.call_with("srv", Address::Id(ECHO), b"x", CallOpts::default(), move |_| {
        tx.send(h.call("srv", Address::Id(ECHO), b"y", GUARD)).unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), Err(CallError::WouldDeadlock));
}

#[test]
fn callbacks_chain_calls_on_the_io_thread() {
    let (_s, addr, _) = server(Config::default());
    let c = client(Config::default(), &addr);
    let (tx, rx) = mpsc::channel();
    fn step(h: skynet_cluster::engine::Handle, left: u32, tx: mpsc::Sender<u32>) {
        let h2 = h.clone();
        h.call_with("srv", Address::Id(ECHO), &left.to_le_bytes(), CallOpts::default(), move |r| {
            let v = u32::from_le_bytes(r.unwrap().as_slice().try_into().unwrap());
            if v == 0 {
                tx.send(v).unwrap();
            } else {
                step(h2, v - 1, tx);
            }
        })
        .unwrap();
    }
    step(c.handle(), 1000, tx);
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), 0);
}

#[test]
fn panicking_handler_and_callback_leave_the_node_working() {
    use skynet_cluster::engine::{FnService, Inbound, Responder};
    let srv = Node::new(Config::default()).unwrap();
    let addr = srv.listen("127.0.0.1:0").unwrap().to_string();
    srv.set_service(std::sync::Arc::new(FnService {
        call: |req: Inbound<'_>, r: Responder| {
            if req.payload == b"panic" {
                panic!("test: handler panics on purpose");
            }
            r.ok(req.payload)
        },
        push: |_req: Inbound<'_>| panic!("test: push handler panics on purpose"),
    }));
    let c = client(Config::default(), &addr);
    assert_eq!(c.call("srv", Address::Id(1), b"panic", GUARD), Err(CallError::Remote(b"no response".to_vec())));
    c.push("srv", Address::Id(1), b"x").unwrap();
    assert_eq!(c.call("srv", Address::Id(1), b"fine", GUARD).unwrap(), b"fine");
    c.call_with("srv", Address::Id(1), b"cb", CallOpts::default(), |_| panic!("test: callback panics on purpose"))
        .unwrap();
    assert_eq!(c.call("srv", Address::Id(1), b"still", GUARD).unwrap(), b"still");
}

#[test]
fn no_copy_paths_round_trip_every_size() {
    use skynet_cluster::engine::{FnService, Inbound, Responder};
    let srv = Node::new(Config::default()).unwrap();
    let addr = srv.listen("127.0.0.1:0").unwrap().to_string();
    srv.set_service(std::sync::Arc::new(FnService {
        call: |req: Inbound<'_>, r: Responder| r.ok_bytes(req.take_payload()),
        push: |_req: Inbound<'_>| {},
    }));
    let c = client(Config::default(), &addr);
    let (tx, rx) = mpsc::channel();
    for (i, n) in [0usize, 1, 32767, 32768, 32769, 65536, 65537, 1 << 20].into_iter().enumerate() {
        let p = bytes::Bytes::from(pattern(n, i as u8));
        let want = p.clone();
        let tx = tx.clone();
        c.call_with_bytes("srv", Address::Id(7), p.clone(), CallOpts { timeout: GUARD, trace: Some(b"t") }, move |r| {
            tx.send(r.unwrap().as_slice() == &want[..]).unwrap();
        })
        .unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), "size {n}");
        c.push_bytes("srv", Address::Id(7), p).unwrap();
    }
    assert_eq!(c.call("srv", Address::Id(7), b"end", GUARD).unwrap(), b"end");
}
