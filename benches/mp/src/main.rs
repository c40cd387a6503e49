//! shmq's multi-process benchmark: latency and throughput between real
//! processes, beside the limits of the hardware and the queues people use
//! today, all measured in the same run and reported as ratios.
//!
//! ```text
//! cargo run --release -p shmq-mpbench -- --docs   # full run; rewrites docs/BENCHMARKS.md's tables and docs/bench/*.svg
//! cargo run --release -p shmq-mpbench             # full run, report on stdout only
//! cargo run --release -p shmq-mpbench -- --smoke  # seconds: checks that every part still runs
//! ```
//!
//! Flags: `--smoke`, `--docs`, `--no-python`, `--repeat N` (throughput runs
//! per configuration; the median is kept, default 3), `--only SECTION`
//! (limits, latency, throughput, pool, python; repeatable), `--size BYTES`
//! (repeatable).

mod lat;
mod link;
mod peers;
mod plot;
mod proc;
mod report;
mod tput;

use lat::{ping_pong, Rtt};
use link::{Ipc, Shmq, Wait, Word};
use peers::{Iceoryx2, IoxWait, Ipmpsc};
use std::time::Duration;
use tput::{RecvMode, Tput};

/// Message sizes of the throughput runs.
pub const SIZES: [usize; 4] = [64, 4096, 64 << 10, 1 << 20];
/// Message sizes of the latency runs.
pub const LAT_SIZES: [usize; 2] = [64, 4096];
/// Producers × consumers of the scaling runs.
pub const TOPOLOGIES: [(usize, usize); 3] = [(1, 1), (2, 2), (4, 4)];

pub struct Config {
    pub smoke: bool,
    pub docs: bool,
    pub python: bool,
    pub repeat: usize,
    /// Sections to run (`--only`); empty: all.
    pub only: Vec<String>,
    /// Message sizes to run (`--size`); empty: all.
    pub sizes: Vec<usize>,
}

impl Config {
    fn from_args() -> Config {
        let mut c = Config {
            smoke: false,
            docs: false,
            python: true,
            repeat: 3,
            only: Vec::new(),
            sizes: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--smoke" => c.smoke = true,
                "--docs" => c.docs = true,
                "--no-python" => c.python = false,
                "--repeat" => {
                    c.repeat = args
                        .next()
                        .and_then(|n| n.parse().ok())
                        .filter(|&n| n > 0)
                        .expect("--repeat takes a positive number")
                }
                "--only" => c.only.push(args.next().expect("--only takes a section")),
                "--size" => c.sizes.push(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .expect("--size takes a number of bytes"),
                ),
                // `cargo bench` passes this to every bench target.
                "--bench" => {}
                _ => {
                    eprintln!("usage: shmq-mpbench [--smoke] [--docs] [--no-python] [--repeat N]");
                    std::process::exit(2);
                }
            }
        }
        if c.smoke {
            c.repeat = 1;
        }
        if c.docs && !(c.only.is_empty() && c.sizes.is_empty()) {
            eprintln!("--docs needs the full run (no --only, no --size)");
            std::process::exit(2);
        }
        c
    }

    fn runs(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }

    fn size(&self, size: usize) -> bool {
        self.sizes.is_empty() || self.sizes.contains(&size)
    }

    /// Length of one throughput run.
    fn dur(&self) -> Duration {
        Duration::from_millis(if self.smoke { 20 } else { 400 })
    }

    /// Timed round trips: `fast` for mechanisms near the floor, else `slow`.
    fn trips(&self, fast: bool) -> (u64, u64) {
        let n = match (fast, self.smoke) {
            (true, false) => 200_000,
            (false, false) => 40_000,
            (_, true) => 500,
        };
        (n / 10, n)
    }
}

/// Everything one run measured.
#[derive(Default)]
pub struct Results {
    /// (mechanism, message size, round trips).
    pub lat: Vec<(String, usize, Rtt)>,
    /// (mechanism, producers × consumers, receive mode, result).
    pub tput: Vec<(String, (usize, usize), String, Tput)>,
    /// (block size, GB/s) single-core memcpy.
    pub memcpy: Vec<(usize, f64)>,
    /// Share of a core used by a receiver parked on an empty queue.
    pub parked_cpu: f64,
    pub python: Option<String>,
    /// (pool, call, tasks, seconds): trivial tasks through a process pool.
    pub pool: Vec<(String, String, u64, f64)>,
}

impl Results {
    pub fn rtt(&self, name: &str, size: usize) -> Option<&Rtt> {
        self.lat
            .iter()
            .find(|(n, s, _)| n == name && *s == size)
            .map(|(_, _, r)| r)
    }
    pub fn tput(&self, name: &str, size: usize, topo: (usize, usize), mode: &str) -> Option<&Tput> {
        self.tput
            .iter()
            .find(|(n, t, m, r)| n == name && r.size == size && *t == topo && m == mode)
            .map(|(.., r)| r)
    }
    pub fn memcpy(&self, size: usize) -> Option<f64> {
        self.memcpy
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, g)| *g)
    }
}

fn progress(what: &str, detail: String) {
    eprintln!("  {what:<28} {detail}");
}

fn latency(cfg: &Config, res: &mut Results) {
    eprintln!("latency (round trips between two processes)");
    let mut add = |name: &str, size: usize, rtt: Rtt| {
        progress(
            &format!("{name} {size} B"),
            format!(
                "p50 {:.0} ns  p99 {:.0}  p99.9 {:.0}  max {:.0}",
                rtt.median(),
                rtt.p99(),
                rtt.p999(),
                rtt.max()
            ),
        );
        res.lat.push((name.to_string(), size, rtt));
    };
    let (w, n) = cfg.trips(true);
    let (a, b) = Word::pair(false);
    add("cache line (floor)", 0, ping_pong(a, b, 0, w, n));
    let (ws, ns) = cfg.trips(false);
    let (a, b) = Word::pair(true);
    add("futex (floor)", 0, ping_pong(a, b, 0, ws, ns));
    for size in LAT_SIZES.into_iter().filter(|&s| cfg.size(s)) {
        for (name, wait, fast) in [
            ("shmq spin", Wait::Spin, true),
            ("shmq recv", Wait::Recv, true),
            ("shmq park", Wait::Park, false),
        ] {
            let (w, n) = cfg.trips(fast);
            let (a, b) = Shmq::pair(wait);
            add(name, size, ping_pong(a, b, size, w, n));
        }
        let (a, b) = link::pipe_pair();
        add("pipe", size, ping_pong(a, b, size, ws, ns));
        let (a, b) = link::socket_pair();
        add("unix socket", size, ping_pong(a, b, size, ws, ns));
        let (a, b) = Ipc::pair();
        add("ipc-channel", size, ping_pong(a, b, size, ws, ns));
        let (a, b) = Ipmpsc::pair();
        add("ipmpsc", size, ping_pong(a, b, size, ws, ns));
        let (a, b) = Iceoryx2::pair(size, IoxWait::BusyPoll);
        add("iceoryx2 busy-poll", size, ping_pong(a, b, size, w, n));
        let (a, b) = Iceoryx2::pair(size, IoxWait::Event);
        add("iceoryx2 event", size, ping_pong(a, b, size, ws, ns));
    }
}

/// The median (by rate) of `cfg.repeat` runs of `f`.
fn median_of(cfg: &Config, mut f: impl FnMut() -> Tput) -> Tput {
    let mut runs: Vec<Tput> = (0..cfg.repeat).map(|_| f()).collect();
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    runs.swap_remove(runs.len() / 2)
}

fn throughput(cfg: &Config, res: &mut Results) {
    eprintln!("throughput (one way, between processes)");
    let dur = cfg.dur();
    let mut add = |name: &str, topo: (usize, usize), mode: &str, t: Tput| {
        progress(
            &format!("{name} {} B {}x{} {mode}", t.size, topo.0, topo.1),
            format!(
                "{:.3} M msg/s  {:.2} GB/s  {:.3} CPU s/M msgs  {:.2} wakes/k msgs",
                t.rate() / 1e6,
                t.gbps(),
                t.cpu_per_m(),
                t.wakes_per_k()
            ),
        );
        res.tput.push((name.to_string(), topo, mode.to_string(), t));
    };
    for size in SIZES.into_iter().filter(|&s| cfg.size(s)) {
        for (np, nc) in TOPOLOGIES {
            for (mode, m) in [(RecvMode::Single, "recv"), (RecvMode::Batch, "recv_batch")] {
                let t = median_of(cfg, || tput::shmq(size, np, nc, mode, dur));
                add("shmq", (np, nc), m, t);
            }
        }
        let t = median_of(cfg, || {
            let (r, w) = link::pipe();
            tput::frames(r, w, size, dur)
        });
        add("pipe", (1, 1), "-", t);
        let t = median_of(cfg, || {
            let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
            tput::frames(r, w, size, dur)
        });
        add("unix socket", (1, 1), "-", t);
        let t = median_of(cfg, || tput::ipc(size, dur));
        add("ipc-channel", (1, 1), "-", t);
        let t = median_of(cfg, || peers::ipmpsc_tput(size, dur));
        add("ipmpsc", (1, 1), "-", t);
        let t = median_of(cfg, || peers::iceoryx2_tput(size, IoxWait::BusyPoll, dur));
        add("iceoryx2 busy-poll", (1, 1), "-", t);
        let t = median_of(cfg, || peers::iceoryx2_tput(size, IoxWait::Event, dur));
        add("iceoryx2 event", (1, 1), "-", t);
    }
}

fn limits(cfg: &Config, res: &mut Results) {
    eprintln!("limits");
    for size in SIZES {
        let g = tput::memcpy(size, cfg.dur());
        progress(&format!("memcpy {size} B"), format!("{g:.2} GB/s"));
        res.memcpy.push((size, g));
    }
    let d = Duration::from_millis(if cfg.smoke { 100 } else { 2000 });
    res.parked_cpu = tput::parked_receiver_cpu(d);
    progress(
        "parked receiver",
        format!("{:.4} % of a core", res.parked_cpu * 100.0),
    );
}

/// The pool benchmark's task, the same as peers.py's: trivial, so the
/// figure is the pool's own cost per task.
fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

/// Pool workers (as Python's tutorial, `Pool(3)`).
pub const POOL_WORKERS: usize = 3;

/// Trivial tasks through shmq's process pool: `map` (chunked) and one
/// `apply_async` per task.
fn pool(cfg: &Config, res: &mut Results) {
    eprintln!("process pool ({POOL_WORKERS} workers, trivial tasks)");
    let pool = shmq::process::Pool::new(POOL_WORKERS).expect("starting the pool");
    // Warm the workers up.
    pool.map(square, 0..1000u64).expect("pool map");
    let (n_map, n_apply) = if cfg.smoke {
        (2_000, 500)
    } else {
        (400_000, 40_000)
    };
    let t = std::time::Instant::now();
    let out = pool.map(square, 0..n_map).expect("pool map");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out.len() as u64, n_map);
    progress(
        "shmq Pool map",
        format!("{:.0} tasks/s", n_map as f64 / secs),
    );
    res.pool
        .push(("shmq Pool".into(), "map".into(), n_map, secs));
    let t = std::time::Instant::now();
    let handles: Vec<_> = (0..n_apply)
        .map(|i| pool.apply_async(square, &i).expect("apply_async"))
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.get().expect("task result"), square(i as u64));
    }
    let secs = t.elapsed().as_secs_f64();
    progress(
        "shmq Pool apply_async",
        format!("{:.0} tasks/s", n_apply as f64 / secs),
    );
    res.pool
        .push(("shmq Pool".into(), "apply_async".into(), n_apply, secs));
}

/// Runs peers.py and folds its lines into `res`.
fn python(cfg: &Config, res: &mut Results) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script);
    if cfg.smoke {
        cmd.arg("--smoke");
    }
    eprintln!("python multiprocessing ({script})");
    let out = match cmd.output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!(
                "  python3 failed; skipped: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("  python3 not runnable ({e}); skipped");
            return;
        }
    };
    res.python = report::command_line("python3", &["--version"]);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        match f.first() {
            Some(&"rtt") if f.len() == 9 => {
                let mut at = [0.0; 6];
                for (i, v) in at.iter_mut().enumerate() {
                    *v = num(3 + i).unwrap_or(f64::NAN);
                }
                let size = num(2).unwrap_or(0.0) as usize;
                let rtt = Rtt {
                    at,
                    mean: f64::NAN,
                    samples: 0,
                };
                progress(
                    &format!("{} {size} B", f[1]),
                    format!("p50 {:.0} ns  p99 {:.0}", rtt.median(), rtt.p99()),
                );
                res.lat.push((f[1].to_string(), size, rtt));
            }
            Some(&"pool") if f.len() == 5 => {
                let (tasks, secs) = (num(3).unwrap_or(0.0) as u64, num(4).unwrap_or(f64::NAN));
                progress(
                    &format!("{} {}", f[1], f[2]),
                    format!("{:.0} tasks/s", tasks as f64 / secs),
                );
                res.pool
                    .push((f[1].to_string(), f[2].to_string(), tasks, secs));
            }
            Some(&"tput") if f.len() == 6 => {
                let t = Tput {
                    size: num(2).unwrap_or(0.0) as usize,
                    msgs: num(3).unwrap_or(0.0) as u64,
                    secs: num(4).unwrap_or(f64::NAN),
                    cpu: num(5).unwrap_or(f64::NAN),
                    wakes: 0,
                };
                progress(
                    &format!("{} {} B", f[1], t.size),
                    format!("{:.4} M msg/s", t.rate() / 1e6),
                );
                res.tput.push((f[1].to_string(), (1, 1), "-".into(), t));
            }
            _ => eprintln!("  unexpected line from peers.py: {line}"),
        }
    }
}

fn main() {
    // The pool's workers are this program run again: they start here.
    shmq::process::init();
    let cfg = Config::from_args();
    let mut res = Results::default();
    let t0 = std::time::Instant::now();
    if cfg.runs("limits") {
        limits(&cfg, &mut res);
    }
    if cfg.runs("latency") {
        latency(&cfg, &mut res);
    }
    if cfg.runs("throughput") {
        throughput(&cfg, &mut res);
    }
    if cfg.runs("pool") {
        pool(&cfg, &mut res);
    }
    if cfg.python && cfg.runs("python") {
        python(&cfg, &mut res);
    }
    let md = report::markdown(&cfg, &res, t0.elapsed());
    println!("{md}");
    if cfg.docs {
        report::write_docs(&res, &md).expect("writing docs/");
    }
}
