//! A three-stage pipeline in three processes, passing typed rkyv structs:
//! stage 1 generates weather readings from local station data, stage 2
//! converts and classifies them, stage 3 aggregates and prints a summary.
//! Stages 2 and 3 take messages in batches (many per wake-up) and read them
//! in place from shared memory.
//!
//! ```text
//! cargo run --release --example pipeline [READINGS]
//! ```
//!
//! The Python it replaces: three `Process`es joined by two `Queue`s, each
//! item pickled and unpickled at every hop, and a `None` sentinel passed
//! down the line at the end.

use rkyv::{Archive, Deserialize, Serialize};
use shmq::{process, Queue, RecvError, TypedQueue};
use std::collections::BTreeMap;
use std::time::Instant;

/// Local data: station, latitude, mean temperature (°C), daily swing (°C).
const STATIONS: &str = "\
Oslo,59.9,6.3,7
Lagos,6.5,27.0,6
Reykjavik,64.1,4.7,5
Cairo,30.0,22.3,12
Lima,-12.0,19.2,6
Ulaanbaatar,47.9,-0.4,15
Singapore,1.3,27.5,6
Yakutsk,62.0,-8.8,11
Sydney,-33.9,18.0,8
Phoenix,33.4,24.0,14
Nuuk,64.2,-1.4,6
Mumbai,19.1,27.2,7";

/// Stage 1 -> 2.
#[derive(Archive, Serialize, Deserialize)]
struct Reading {
    seq: u64,
    station: String,
    minute: u32,
    temp_c: f32,
    humidity: u8,
    flags: Vec<String>,
}

/// Stage 2 -> 3.
#[derive(Archive, Serialize, Deserialize)]
struct Enriched {
    seq: u64,
    station: String,
    day: u32,
    temp_f: f32,
    alert: Alert,
}

#[derive(Archive, Serialize, Deserialize)]
enum Alert {
    None,
    Frost,
    Heat { temp_f: f32 },
    Humid(u8),
}

const BATCH: usize = 256;

type Stages = (TypedQueue<Reading>, TypedQueue<Enriched>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init(); // stages 2 and 3 run here in their processes
    let n: u64 = std::env::args().nth(1).map_or(Ok(200_000), |s| s.parse())?;
    let raw = Queue::builder()
        .capacity_bytes(1 << 20)
        .create_typed::<Reading>()?;
    let enriched = Queue::builder()
        .capacity_bytes(1 << 20)
        .create_typed::<Enriched>()?;
    let mut s2 = process::spawn(stage2, (&raw, &enriched))?;
    let mut s3 = process::spawn(stage3, (&enriched, n))?;

    // Stage 1 (this process): generate readings from the station table.
    let t0 = Instant::now();
    let stations: Vec<(&str, f32, f32)> = STATIONS
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0], f[2].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect();
    let tx = raw.sender();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut batch = Vec::with_capacity(BATCH);
    for seq in 0..n {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let (name, mean, swing) = stations[(seq % stations.len() as u64) as usize];
        let minute = (seq / stations.len() as u64 * 10 % (60 * 24 * 365)) as u32;
        let hour = (minute / 60 % 24) as f32;
        let noise = (rng % 1000) as f32 / 1000.0 - 0.5;
        let temp_c =
            mean + swing * ((hour - 15.0) / 24.0 * std::f32::consts::TAU).cos() / 2.0 + 6.0 * noise;
        let humidity = (rng >> 20) as u8 % 101;
        let mut flags = Vec::new();
        if rng % 97 == 0 {
            flags.push("sensor-recalibrated".to_string());
        }
        batch.push(Reading {
            seq,
            station: name.to_string(),
            minute,
            temp_c,
            humidity,
            flags,
        });
        if batch.len() == BATCH {
            tx.send_batch(&batch)?;
            batch.clear();
        }
    }
    tx.send_batch(&batch)?;
    raw.close(); // stage 2 drains and stops; no sentinel
    println!(
        "stage 1 (pid {}): generated {n} readings from {} stations in {:.3} s",
        std::process::id(),
        stations.len(),
        t0.elapsed().as_secs_f64()
    );
    s2.join()?;
    Ok(s3.join()?)
}

/// Stage 2: °C -> °F, minute -> day, and an alert class.
fn stage2((raw, enriched): Stages) -> Result<(), Box<dyn std::error::Error>> {
    let (rx, tx) = (raw.receiver(), enriched.sender());
    let (mut n, mut batches) = (0u64, 0u64);
    let mut out = Vec::with_capacity(BATCH);
    loop {
        let batch = match rx.recv_batch(BATCH) {
            Ok(b) => b,
            Err(RecvError::Closed) => break,
            Err(e) => return Err(e.into()),
        };
        batches += 1;
        for r in batch.iter() {
            let r = r?; // validated, in place
            let temp_f = r.temp_c.to_native() * 9.0 / 5.0 + 32.0;
            let alert = if temp_f <= 32.0 {
                Alert::Frost
            } else if temp_f >= 90.0 {
                Alert::Heat { temp_f }
            } else if r.humidity >= 98 {
                Alert::Humid(r.humidity)
            } else {
                Alert::None
            };
            out.push(Enriched {
                seq: r.seq.to_native(),
                station: r.station.as_str().to_string(),
                day: r.minute.to_native() / (60 * 24),
                temp_f,
                alert,
            });
        }
        drop(batch); // give the room back before sending on
        n += out.len() as u64;
        tx.send_batch(&out)?;
        out.clear();
    }
    enriched.close();
    println!(
        "stage 2 (pid {}): transformed {n} readings in {batches} batches ({:.1} per batch)",
        std::process::id(),
        n as f64 / batches.max(1) as f64
    );
    Ok(())
}

#[derive(Default)]
struct Stats {
    count: u64,
    sum: f64,
    min: f32,
    max: f32,
    frost: u32,
    heat: u32,
    humid: u32,
}

/// Stage 3: per-station aggregates.
fn stage3(
    (enriched, expect): (TypedQueue<Enriched>, u64),
) -> Result<(), Box<dyn std::error::Error>> {
    let rx = enriched.receiver();
    let mut by_station: BTreeMap<String, Stats> = BTreeMap::new();
    let (mut n, mut seq_sum) = (0u64, 0u64);
    loop {
        let batch = match rx.recv_batch(BATCH) {
            Ok(b) => b,
            Err(RecvError::Closed) => break,
            Err(e) => return Err(e.into()),
        };
        for e in batch.iter() {
            let e = e?;
            n += 1;
            seq_sum = seq_sum.wrapping_add(e.seq.to_native());
            let t = e.temp_f.to_native();
            let s = match by_station.get_mut(e.station.as_str()) {
                Some(s) => s,
                None => by_station.entry(e.station.to_string()).or_insert(Stats {
                    min: f32::MAX,
                    max: f32::MIN,
                    ..Stats::default()
                }),
            };
            s.count += 1;
            s.sum += t as f64;
            s.min = s.min.min(t);
            s.max = s.max.max(t);
            match &e.alert {
                ArchivedAlert::None => {}
                ArchivedAlert::Frost => s.frost += 1,
                ArchivedAlert::Heat { .. } => s.heat += 1,
                ArchivedAlert::Humid(_) => s.humid += 1,
            }
        }
    }
    println!(
        "stage 3 (pid {}): {n} records from {} stations",
        std::process::id(),
        by_station.len()
    );
    println!("  station        count   mean°F    min°F    max°F  frost   heat  humid");
    for (name, s) in &by_station {
        println!(
            "  {name:<12} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>6} {:>6}",
            s.count,
            s.sum / s.count as f64,
            s.min,
            s.max,
            s.frost,
            s.heat,
            s.humid
        );
    }
    let all_once = n == expect && seq_sum == expect.wrapping_mul(expect.wrapping_sub(1)) / 2;
    println!(
        "  every reading arrived exactly once: {}",
        if all_once { "yes" } else { "NO" }
    );
    if !all_once {
        return Err("records lost or duplicated".into());
    }
    Ok(())
}
