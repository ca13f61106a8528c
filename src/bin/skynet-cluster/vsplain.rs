//! `bench --vs-plain`: TLS against plain text on the same node in the same run, with the
//! issue's speed goals marked met or not met. Two client nodes, one plain and one TLS, each
//! with its own link to the node (a `serve --tls prefer` serves both on one port); each row
//! is measured plain then TLS, round after round, and each figure reported is the median
//! of its rounds.

use super::bench::{calls_node, fmt_dur, label, payload, ratio, run_calls};
use super::tlsflags::{Tls, DEFAULT_PEER};
use bytes::Bytes;
use skynet_cluster::engine::{Heartbeat, TlsConfig};
use std::time::Duration;

/// Which rows, how long each measurement, how many rounds.
pub struct Rows {
    pub sizes: Option<Vec<Option<usize>>>,
    pub concs: Option<Vec<usize>>,
    pub dur: Duration,
    pub rounds: usize,
}

/// What a row is held to (issue 14's figures).
#[derive(Clone, Copy)]
enum Goal {
    /// TLS calls/s at least this share of plain's.
    Rate(f64),
    /// TLS p50 at most this multiple of plain's.
    P50(f64),
}

fn goal(size: Option<usize>, conc: usize) -> Option<Goal> {
    match (size, conc) {
        (None, 64) => Some(Goal::Rate(0.80)),
        (Some(n), _) if n == 1 << 20 => Some(Goal::Rate(0.70)),
        (None, 1) => Some(Goal::P50(1.2)),
        _ => None,
    }
}

#[derive(Clone, Copy, Default)]
struct Sample {
    rate: f64,
    p50: f64,
    errors: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn run(target: &str, tls: &Tls, heartbeat: Option<Heartbeat>, rows: Rows) -> Result<(), String> {
    let plain_tls = Tls { cfg: TlsConfig::default(), peer: DEFAULT_PEER.into() };
    let plain = calls_node(target, &plain_tls, heartbeat)?;
    let secure = calls_node(target, tls, heartbeat)?;
    if secure.health().tls_links == 0 {
        return Err(format!(
            "the link to {target} is not TLS (--tls {}): the node does not speak TLS; run `serve --tls prefer`",
            tls.cfg.mode.as_str()
        ));
    }
    let list: Vec<(Option<usize>, usize)> = match (&rows.sizes, &rows.concs) {
        (None, None) => vec![(None, 1), (None, 64), (Some(1 << 20), 1), (Some(1 << 20), 8)],
        (s, c) => {
            let sizes = s.clone().unwrap_or(vec![None]);
            let concs = c.clone().unwrap_or(vec![1]);
            sizes.iter().flat_map(|&s| concs.iter().map(move |&c| (s, c))).collect()
        }
    };
    println!(
        "skynet-cluster bench --vs-plain -> {target}  (TLS node name {}; {} per measurement, {} round{}, \
         plain then TLS per row; medians)",
        tls.peer,
        fmt_dur(rows.dur),
        rows.rounds,
        if rows.rounds == 1 { "" } else { "s" }
    );
    let mut samples: Vec<[Vec<Sample>; 2]> = vec![[Vec::new(), Vec::new()]; list.len()];
    for round in 1..=rows.rounds {
        for (i, &(size, conc)) in list.iter().enumerate() {
            let p = Bytes::from(payload(size));
            let mut line = format!("round {round}/{}: {:<5}x{:<4}", rows.rounds, label(size), conc);
            for (k, (node, peer, what)) in
                [(&plain, DEFAULT_PEER, "plain"), (&secure, tls.peer.as_str(), "tls")].into_iter().enumerate()
            {
                let o = run_calls(&node.handle(), peer, &p, conc, rows.dur, None);
                let s = Sample { rate: o.calls as f64 / o.secs, p50: o.us(0.5), errors: o.errors };
                line += &format!("  {what} {:>8.0}/s p50 {:>7.1} us", s.rate, s.p50);
                if let Some(e) = &o.last_error {
                    line += &format!(" ({} errors, last: {e})", s.errors);
                }
                samples[i][k].push(s);
            }
            eprintln!("{line}");
        }
    }
    print_table(&list, &samples);
    Ok(())
}

fn print_table(list: &[(Option<usize>, usize)], samples: &[[Vec<Sample>; 2]]) {
    println!(
        "{:<5}{:>5} {:>13} {:>11} {:>6} {:>10} {:>8} {:>6}  goal",
        "size", "conc", "plain calls/s", "TLS calls/s", "ratio", "p50 plain", "p50 TLS", "ratio"
    );
    for (&(size, conc), s) in list.iter().zip(samples) {
        let med = |k: usize, f: fn(&Sample) -> f64| median(s[k].iter().map(f).collect());
        let (rate_p, rate_t) = (med(0, |x| x.rate), med(1, |x| x.rate));
        let (p50_p, p50_t) = (med(0, |x| x.p50), med(1, |x| x.p50));
        let errors: u64 = s.iter().flatten().map(|x| x.errors).sum();
        let verdict = |ok: bool| if ok && errors == 0 { "met" } else { "not met" };
        let g = match goal(size, conc) {
            Some(Goal::Rate(min)) => {
                format!("TLS calls/s >= {:.0}% of plain: {}", min * 100.0, verdict(rate_t >= min * rate_p))
            }
            Some(Goal::P50(max)) => format!("TLS p50 <= {max}x plain: {}", verdict(p50_t <= max * p50_p)),
            None => "-".into(),
        };
        let errs = if errors > 0 { format!(" ({errors} errors)") } else { String::new() };
        println!(
            "{:<5}{:>5} {:>13.0} {:>11.0} {:>6} {:>8.1}us {:>6.1}us {:>6}  {g}{errs}",
            label(size),
            conc,
            rate_p,
            rate_t,
            ratio(rate_t, rate_p),
            p50_p,
            p50_t,
            ratio(p50_t, p50_p)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_goals() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(matches!(goal(None, 64), Some(Goal::Rate(r)) if r == 0.80));
        assert!(matches!(goal(Some(1 << 20), 8), Some(Goal::Rate(r)) if r == 0.70));
        assert!(matches!(goal(None, 1), Some(Goal::P50(m)) if m == 1.2));
        assert!(goal(Some(1024), 1).is_none());
    }
}
