//! Per-link counters (`skc_stats_get`) and node-wide health (`skc_health_get`).

use super::error::{guard, skc_status, Error};
use super::handle::cstr;
use super::node::{get, skc_node};
use std::os::raw::c_char;

/// Counters of the link(s) to one peer node (they survive reconnects), or of all accepted
/// links together. Latencies are in microseconds, measured from sending a call to its answer.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct skc_stats {
    /// Calls (and queries) sent, or requests received on accepted links.
    pub calls: u64,
    /// Pushes sent, or received on accepted links.
    pub pushes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Calls that ended with an error, or dropped links.
    pub errors: u64,
    pub timeouts: u64,
    /// Connections established.
    pub connects: u64,
    /// Connections lost or closed.
    pub drops: u64,
    /// Completed calls counted in the latency histogram, and its percentiles.
    pub latency_count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// A link to the peer is connected right now (always false for accepted links).
    pub link_up: bool,
}

/// Fills `*out` with the counters of the link to peer node `peer`, or with those of all
/// accepted links together when `peer` is NULL. `out_size` must be `sizeof(skc_stats)` (a
/// smaller value gives `SKC_ERR_SIZE`: a header/library mismatch). A peer never called or
/// pushed to gives `SKC_ERR_NOT_FOUND`.
///
/// Ownership: `peer` is borrowed; `*out` is the caller's storage. Thread-safety: thread-safe
/// (counters are read while the node runs; they are consistent individually, not together).
#[no_mangle]
pub extern "C" fn skc_stats_get(
    node: *mut skc_node,
    peer: *const c_char,
    out: *mut skc_stats,
    out_size: usize,
) -> skc_status {
    guard(|| {
        let n = get(node)?;
        if out.is_null() {
            return Err(Error::null("out"));
        }
        if out_size < std::mem::size_of::<skc_stats>() {
            return Err(Error::new(
                skc_status::SKC_ERR_SIZE,
                format!("out_size {out_size} is smaller than sizeof(skc_stats) = {}", std::mem::size_of::<skc_stats>()),
            ));
        }
        let (s, up) = if peer.is_null() {
            (n.handle.inbound_stats(), false)
        } else {
            let p = cstr(peer, "peer")?;
            let s = n
                .handle
                .stats(p)
                .ok_or_else(|| Error::new(skc_status::SKC_ERR_NOT_FOUND, format!("no link to `{p}` was ever used")))?;
            (s, n.handle.link_up(p))
        };
        let v = skc_stats {
            calls: s.calls,
            pushes: s.pushes,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            errors: s.errors,
            timeouts: s.timeouts,
            connects: s.connects,
            drops: s.drops,
            latency_count: s.latency_count,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            p999_us: s.p999_us,
            max_us: s.max_us,
            link_up: up,
        };
        // SAFETY: non-NULL and at least sizeof(skc_stats) bytes, checked above.
        unsafe { out.write(v) };
        Ok(())
    })
}

/// A node's health: what it holds against its node-wide budgets now, and what its limits and
/// timers did since it started (counters only grow).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct skc_health {
    /// Links open now (both directions), and the limit (`skc_config_set_max_links`).
    pub links: usize,
    pub max_links: usize,
    /// Bytes of multi-part messages being reassembled (as their headers declare), over all
    /// links, and the limit (`skc_config_set_max_reassembly_total`).
    pub reassembly_bytes: usize,
    pub max_reassembly_bytes: usize,
    /// Bytes queued to send over all links, and the limit (`skc_config_set_max_send_total`).
    pub send_bytes: usize,
    pub max_send_bytes: usize,
    /// Answers given (`skc_respond`, `skc_respond_error`) after their link had closed:
    /// dropped.
    pub late_answers: u64,
    /// Connections refused by `max_links` or a listener's `max_clients` (`skc_listen_max`).
    pub refused_links: u64,
    /// Messages refused, or reads paused, because a node-wide byte budget was full.
    pub over_budget: u64,
    /// Links declared dead by the heartbeat (`skc_config_set_heartbeat_ms`).
    pub heartbeat_timeouts: u64,
    /// Links closed by the multi-part or idle timeout.
    pub expired: u64,
    /// Protocol errors from peers: answered as stock answers them, or the link closed.
    pub protocol_errors: u64,
    /// Times accepting stopped for lack of file descriptors (once per episode; accepting
    /// resumes by itself when descriptors are free again).
    pub accept_stalls: u64,
    // Fields below were added after the first version of this struct (issue 14): a caller
    // built with an older header passes the older size and gets the fields it knows.
    /// Connections refused because their source is not in the allowlist
    /// (`skc_config_set_allow`).
    pub refused_not_allowed: u64,
    /// Connections refused by the bound per source address
    /// (`skc_config_set_max_links_per_source`).
    pub refused_per_source: u64,
    /// Requests and name queries refused by the exposure policy (`skc_config_set_exposure`).
    pub refused_exposure: u64,
    /// Links that completed a TLS handshake, both directions (`skc_config_set_tls`).
    pub tls_links: u64,
    /// Plain-text peers refused because the TLS mode is `require`: stock senders whose
    /// connection was closed, and links to nodes that did not answer the TLS hello.
    pub refused_plain: u64,
    /// TLS handshakes that failed (unknown CA, a certificate naming another node, expired,
    /// not TLS at all), and hellos not followed by a handshake.
    pub tls_failures: u64,
}

/// `sizeof(skc_health)` before issue 14 appended its fields: still accepted by
/// `skc_health_get`, which then writes only the fields that version had.
const HEALTH_V1_SIZE: usize = std::mem::offset_of!(skc_health, refused_not_allowed);

/// Fills `*out` with the node's health (see `skc_health`). `out_size` is `sizeof(skc_health)`
/// as the caller's header declares it: fields are only ever appended, so a program built with
/// an older header (without the admission and TLS counters) passes its smaller size and gets
/// the fields it knows; any other smaller size gives `SKC_ERR_SIZE` (a header/library
/// mismatch). A larger size: the fields this library knows are written, the rest of `*out` is
/// left alone.
///
/// Ownership: `*out` is the caller's storage. Thread-safety: thread-safe (values are read
/// while the node runs; each is consistent on its own, not together with the others).
#[no_mangle]
pub extern "C" fn skc_health_get(node: *mut skc_node, out: *mut skc_health, out_size: usize) -> skc_status {
    guard(|| {
        let n = get(node)?;
        if out.is_null() {
            return Err(Error::null("out"));
        }
        let full = std::mem::size_of::<skc_health>();
        if out_size < full && out_size != HEALTH_V1_SIZE {
            return Err(Error::new(
                skc_status::SKC_ERR_SIZE,
                format!(
                    "out_size {out_size} is neither sizeof(skc_health) = {full} nor its first version's {HEALTH_V1_SIZE}"
                ),
            ));
        }
        let h = n.handle.health();
        let v = skc_health {
            links: h.links,
            max_links: h.max_links,
            reassembly_bytes: h.reassembly_bytes,
            max_reassembly_bytes: h.max_reassembly_bytes,
            send_bytes: h.send_bytes,
            max_send_bytes: h.max_send_bytes,
            late_answers: h.late_answers,
            refused_links: h.refused_links,
            over_budget: h.over_budget,
            heartbeat_timeouts: h.heartbeat_timeouts,
            expired: h.expired,
            protocol_errors: h.protocol_errors,
            accept_stalls: h.accept_stalls,
            refused_not_allowed: h.refused_not_allowed,
            refused_per_source: h.refused_per_source,
            refused_exposure: h.refused_exposure,
            tls_links: h.tls_links,
            refused_plain: h.refused_plain,
            tls_failures: h.tls_failures,
        };
        let n = out_size.min(full);
        // SAFETY: `out` is non-NULL and the caller's storage holds `out_size` >= `n` bytes
        // (checked above: `n` is the full size or the first version's, a prefix of whole
        // fields); `v` is a live local of `full` >= `n` bytes; the two cannot overlap. A
        // byte copy needs no alignment.
        unsafe { std::ptr::copy_nonoverlapping(&v as *const skc_health as *const u8, out as *mut u8, n) };
        Ok(())
    })
}
