//! The raw floor: plain blocking TCP over loopback with TCP_NODELAY, in-process threads,
//! one `write` and one `read` per frame (a `read_exact`, so a frame larger than what the
//! socket holds takes more than one read). Concurrency 1 is a strict ping-pong on one
//! thread; concurrency N keeps N frames in flight, on the same thread when they fit in the
//! socket buffers, else with a writer and a reader thread.

use super::procstat::thread_cpu;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use std::time::{Duration, Instant};

pub struct Floor {
    pub calls: u64,
    pub secs: f64,
    pub hist: Histogram<u64>,
    /// CPU of the client side and of the server side (their threads).
    pub cli_cpu: Duration,
    pub srv_cpu: Duration,
}

/// A connected client socket and an echo server thread that reports its CPU when the
/// client closes. The frame size travels as the first 8 bytes.
fn pair(frame: usize) -> (TcpStream, std::thread::JoinHandle<Duration>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let cpu0 = thread_cpu();
        let mut n = [0u8; 8];
        if s.read_exact(&mut n).is_err() {
            return Duration::ZERO;
        }
        let mut buf = vec![0u8; u64::from_le_bytes(n) as usize];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
        thread_cpu() - cpu0
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.write_all(&(frame as u64).to_le_bytes()).unwrap();
    (c, h)
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap()
}

/// Round trips of `frame`-byte frames with `conc` in flight, for `dur`.
pub fn pingpong(frame: usize, conc: usize, dur: Duration) -> Floor {
    let frame = frame.max(1);
    let (mut c, h) = pair(frame);
    let mut out = Floor { calls: 0, secs: 0.0, hist: hist(), cli_cpu: Duration::ZERO, srv_cpu: Duration::ZERO };
    let t0 = Instant::now();
    if conc <= 1 {
        let cpu0 = thread_cpu();
        let mut buf = vec![7u8; frame];
        while t0.elapsed() < dur {
            let s = Instant::now();
            c.write_all(&buf).unwrap();
            c.read_exact(&mut buf).unwrap();
            let _ = out.hist.record(s.elapsed().as_micros().max(1) as u64);
            out.calls += 1;
        }
        out.secs = t0.elapsed().as_secs_f64();
        out.cli_cpu = thread_cpu() - cpu0;
        drop(c);
    } else if conc * frame <= 512 << 10 {
        // Pipelined on one thread: the socket buffers hold every frame in flight, so the
        // blocking writes cannot deadlock against the server's.
        let cpu0 = thread_cpu();
        let mut buf = vec![7u8; frame];
        let mut times = VecDeque::with_capacity(conc);
        for _ in 0..conc {
            times.push_back(Instant::now());
            c.write_all(&buf).unwrap();
        }
        while !times.is_empty() {
            c.read_exact(&mut buf).unwrap();
            let s = times.pop_front().unwrap();
            let _ = out.hist.record(s.elapsed().as_micros().max(1) as u64);
            out.calls += 1;
            if t0.elapsed() < dur {
                times.push_back(Instant::now());
                c.write_all(&buf).unwrap();
            }
        }
        out.secs = t0.elapsed().as_secs_f64();
        out.cli_cpu = thread_cpu() - cpu0;
        drop(c);
    } else {
        // Too much in flight for the socket buffers: a writer and a reader thread.
        let times = Arc::new(Mutex::new(VecDeque::<Instant>::new()));
        let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(conc);
        for _ in 0..conc {
            permit_tx.send(()).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let mut rd = c.try_clone().unwrap();
        let (t2, s2) = (times.clone(), stop.clone());
        let sent2 = sent.clone();
        let writer = std::thread::spawn(move || {
            let cpu0 = thread_cpu();
            let buf = vec![7u8; frame];
            while !s2.load(Ordering::Relaxed) {
                if permit_rx.recv().is_err() {
                    break;
                }
                if s2.load(Ordering::Relaxed) {
                    break;
                }
                t2.lock().push_back(Instant::now());
                sent2.fetch_add(1, Ordering::Relaxed);
                c.write_all(&buf).unwrap();
            }
            (thread_cpu() - cpu0, c)
        });
        let cpu0 = thread_cpu();
        let mut buf = vec![0u8; frame];
        let mut got = 0u64;
        loop {
            if t0.elapsed() >= dur && !stop.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
                let _ = permit_tx.try_send(()); // unblock the writer
            }
            if stop.load(Ordering::Relaxed) {
                // Drain what is still in flight; the writer may add at most one more.
                let w_done = writer.is_finished();
                if w_done && got >= sent.load(Ordering::Relaxed) {
                    break;
                }
                if !w_done && got >= sent.load(Ordering::Relaxed) {
                    std::thread::yield_now();
                    continue;
                }
            }
            rd.read_exact(&mut buf).unwrap();
            let s = times.lock().pop_front().unwrap();
            let _ = out.hist.record(s.elapsed().as_micros().max(1) as u64);
            got += 1;
            let _ = permit_tx.try_send(());
        }
        out.secs = t0.elapsed().as_secs_f64();
        let (wcpu, c) = writer.join().unwrap();
        out.cli_cpu = thread_cpu() - cpu0 + wcpu;
        out.calls = got;
        drop(c);
        drop(rd);
    }
    out.srv_cpu = h.join().unwrap_or_default();
    out
}

/// One-way stream of `frame`-byte frames for `dur`: frames per second at the receiver.
pub fn oneway(frame: usize, dur: Duration) -> (f64, Duration, Duration) {
    let frame = frame.max(1);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let c2 = counter.clone();
    let srv = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let cpu0 = thread_cpu();
        let mut buf = vec![0u8; frame];
        while s.read_exact(&mut buf).is_ok() {
            c2.fetch_add(1, Ordering::Relaxed);
        }
        thread_cpu() - cpu0
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let buf = vec![7u8; frame];
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    while t0.elapsed() < dur {
        for _ in 0..64 {
            c.write_all(&buf).unwrap();
        }
    }
    let cli = thread_cpu() - cpu0;
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let srv_cpu = srv.join().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    (counter.load(Ordering::Relaxed) as f64 / secs, cli, srv_cpu)
}
