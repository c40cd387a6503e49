//! Round-trip latency: the parent sends a message, a forked child sends it
//! back, the parent times the round trip (`Instant`, the same clock for
//! every mechanism) into an HDR histogram.

use crate::link::Link;
use crate::proc::{reap, spawn};
use hdrhistogram::Histogram;
use std::time::Instant;

/// The percentiles the report and the plot use.
pub const LEVELS: [(f64, &str); 6] = [
    (50.0, "p50"),
    (90.0, "p90"),
    (99.0, "p99"),
    (99.9, "p99.9"),
    (99.99, "p99.99"),
    (100.0, "max"),
];

/// Round-trip times in nanoseconds at [`LEVELS`], and the mean.
#[derive(Clone, Debug)]
pub struct Rtt {
    pub at: [f64; 6],
    pub mean: f64,
    pub samples: u64,
}

impl Rtt {
    pub fn median(&self) -> f64 {
        self.at[0]
    }
    pub fn p99(&self) -> f64 {
        self.at[2]
    }
    pub fn p999(&self) -> f64 {
        self.at[3]
    }
    pub fn max(&self) -> f64 {
        self.at[5]
    }

    fn from_hist(h: &Histogram<u64>) -> Rtt {
        let mut at = [0.0; 6];
        for (i, (q, _)) in LEVELS.iter().enumerate() {
            at[i] = if *q >= 100.0 {
                h.max() as f64
            } else {
                h.value_at_percentile(*q) as f64
            };
        }
        Rtt {
            at,
            mean: h.mean(),
            samples: h.len(),
        }
    }
}

/// `warm` untimed, then `n` timed round trips of `size`-byte messages.
pub fn ping_pong<A: Link, B: Link>(mut a: A, b: B, size: usize, warm: u64, n: u64) -> Rtt {
    let child = spawn(move || {
        let mut b = b;
        let mut buf = vec![0u8; size.max(1)];
        for _ in 0..warm + n {
            b.echo(&mut buf);
        }
    });
    let msg = vec![0x5a; size];
    let mut buf = vec![0u8; size.max(1)];
    // 1 ns .. 100 s, 3 significant digits.
    let mut h = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).unwrap();
    for i in 0..warm + n {
        let t = Instant::now();
        a.send(&msg);
        let got = a.recv(&mut buf);
        let dt = t.elapsed().as_nanos() as u64;
        debug_assert!(got == size || size == 0 || got == 0);
        if i >= warm {
            h.saturating_record(dt.max(1));
        }
    }
    reap(child);
    Rtt::from_hist(&h)
}
