//! `Config::standby_after`: while the host's `after_events` runs long on the I/O thread, a
//! standby thread serves the links (real sockets on 127.0.0.1), tells the host through
//! `Service::stalled`, and gives the loop back when the call returns.

mod engine_util;
use engine_util::*;
use parking_lot::Mutex;
use skynet_cluster::engine::{Address, Config, Inbound, Node, Responder, Service};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Echoes calls; a push "block <ms>" makes the next `after_events` sleep that long.
#[derive(Default)]
struct SlowHook {
    block_ms: AtomicU64,
    stalls: Mutex<Vec<Duration>>,
    /// Names of the threads `after_events` ran on, in order.
    hook_threads: Mutex<Vec<String>>,
}

impl Service for SlowHook {
    fn call(&self, req: Inbound<'_>, r: Responder) {
        r.ok(req.payload)
    }
    fn push(&self, req: Inbound<'_>) {
        if let Some(ms) = std::str::from_utf8(req.payload).ok().and_then(|s| s.strip_prefix("block ")) {
            self.block_ms.store(ms.parse().unwrap(), Ordering::SeqCst);
        }
    }
    fn after_events(&self) {
        self.hook_threads.lock().push(std::thread::current().name().unwrap_or("?").to_string());
        let ms = self.block_ms.swap(0, Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
    fn stalled(&self, running: Duration) {
        self.stalls.lock().push(running);
    }
}

fn slow_server(standby_after: Option<Duration>) -> (Node, String, Arc<SlowHook>) {
    let node = Node::new(Config { standby_after, ..Config::default() }).unwrap();
    let addr = node.listen("127.0.0.1:0").unwrap().to_string();
    let hook = Arc::new(SlowHook::default());
    node.set_service(hook.clone());
    (node, addr, hook)
}

/// Blocks the server's I/O thread in `after_events` for `ms`, then times 20 calls made
/// while it is blocked (the longest one).
fn calls_during_block(c: &Node, ms: u64) -> Duration {
    assert_eq!(c.call("srv", Address::Id(ECHO), b"up", GUARD).unwrap(), b"up");
    c.push("srv", Address::Id(ECHO), format!("block {ms}").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut worst = Duration::ZERO;
    for i in 0..20u8 {
        let t = Instant::now();
        assert_eq!(c.call("srv", Address::Id(ECHO), &[i], GUARD).unwrap(), [i]);
        worst = worst.max(t.elapsed());
    }
    worst
}

#[test]
fn standby_serves_links_while_after_events_blocks() {
    let (_s, addr, hook) = slow_server(Some(Duration::from_millis(20)));
    let c = client(Config::default(), &addr);
    let t0 = Instant::now();
    let worst = calls_during_block(&c, 1500);
    assert!(t0.elapsed() < Duration::from_millis(1400), "the calls waited for the blocked hook ({:?})", t0.elapsed());
    assert!(worst < Duration::from_millis(1000), "slowest call {worst:?}");
    {
        let stalls = hook.stalls.lock();
        assert!(!stalls.is_empty(), "stalled was not called");
        assert!(stalls[0] >= Duration::from_millis(20) && stalls[0] < Duration::from_millis(1000), "{:?}", stalls[0]);
        assert!(stalls.windows(2).all(|w| w[0] <= w[1]), "stall times go up");
    }
    assert!(
        hook.hook_threads.lock().iter().any(|n| n == "skc-standby"),
        "the standby ran after_events after its rounds"
    );
    // The blocked call ends; the I/O thread takes the loop back and the standby stops.
    std::thread::sleep(Duration::from_millis(1600));
    let n_stalls = hook.stalls.lock().len();
    hook.hook_threads.lock().clear();
    for i in 0..20u8 {
        assert_eq!(c.call("srv", Address::Id(ECHO), &[i], GUARD).unwrap(), [i]);
    }
    assert_eq!(hook.stalls.lock().len(), n_stalls, "no stall after the hook returned");
    let threads = hook.hook_threads.lock().clone();
    assert!(!threads.is_empty() && threads.iter().all(|n| n == "skc-io"), "{threads:?}");
}

/// The same load without a standby: the calls wait for the blocked hook (what the
/// standby removes; shows the test above can fail).
#[test]
fn without_standby_a_blocked_after_events_holds_up_the_links() {
    let (_s, addr, hook) = slow_server(None);
    let c = client(Config::default(), &addr);
    let worst = calls_during_block(&c, 800);
    assert!(worst >= Duration::from_millis(500), "slowest call {worst:?}");
    assert!(hook.stalls.lock().is_empty());
}

/// Dropping the node while its I/O thread is blocked in `after_events` and the standby
/// holds the loop: the standby sees the shutdown and closes the links (a pending call of
/// a client fails), both threads end once the hook returns; nothing hangs.
#[test]
fn shutdown_while_the_standby_holds_the_loop() {
    let (s, addr, hook) = slow_server(Some(Duration::from_millis(10)));
    let c = client(Config::default(), &addr);
    assert_eq!(c.call("srv", Address::Id(ECHO), b"up", GUARD).unwrap(), b"up");
    c.push("srv", Address::Id(ECHO), b"block 700").unwrap();
    wait_until(|| !hook.stalls.lock().is_empty());
    let t = Instant::now();
    drop(s);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "drop took {took:?}");
    assert!(c.call("srv", Address::Id(ECHO), b"x", Some(Duration::from_secs(2))).is_err(), "the server is gone");
}

/// After an idle second the standby sleeps without a timeout; the next round wakes it, so
/// a hook that then blocks is still taken over.
#[test]
fn standby_wakes_from_its_idle_sleep() {
    let (_s, addr, hook) = slow_server(Some(Duration::from_millis(20)));
    let c = client(Config::default(), &addr);
    assert_eq!(c.call("srv", Address::Id(ECHO), b"up", GUARD).unwrap(), b"up");
    std::thread::sleep(Duration::from_millis(1500));
    let worst = calls_during_block(&c, 1500);
    assert!(worst < Duration::from_millis(1000), "slowest call {worst:?}");
    assert!(!hook.stalls.lock().is_empty(), "stalled was not called");
}
