//! Password hashing benchmark (`cargo bench -p server --bench passwords`).
//!
//! Reports, on this machine:
//! 1. Argon2id hashing time at the minimum parameters (m = 64 MiB, t = 3, p = 1) and at the
//!    time cost calibration picks for this machine (`passwords::calibrate`, what the first
//!    start stores), with whether that lands in the 250–500 ms band.
//! 2. Verification time for a known user with a wrong password and for an unknown user: they
//!    must cost the same (the unknown user is verified against a dummy hash).
//! 3. A login storm: 4 × CPUs concurrent verifications through the password limiter while a
//!    light async task (standing in for agent check-ins) measures how late the runtime
//!    answers it. With hashing in `spawn_blocking` behind the limiter, the runtime stays
//!    responsive; the report gives the worst delay seen.
//!
//! A report, not a test: timings depend on the machine. Exit status is non-zero only when a
//! measurement could not be taken.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::backend::passwords::{self, Hasher, TARGET_MS};

const ROUNDS: usize = 7;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (calibrated, _) = passwords::calibrate(&Hasher::new(1, passwords::T_COST)).await.expect("calibrate");
    println!("argon2id m={} KiB p={} on {cpus} CPU(s); calibration picks t={calibrated}", passwords::M_COST_KIB, passwords::P_COST);

    let mut phc = String::new();
    let mut limiter = Arc::new(Hasher::new(cpus, passwords::T_COST));
    for t_cost in [passwords::T_COST, calibrated] {
        limiter = Arc::new(Hasher::new(cpus, t_cost));
        let mut hash_ms = Vec::new();
        for _ in 0..ROUNDS {
            let t = Instant::now();
            phc = passwords::hash(&limiter, "correct horse battery staple").await.expect("hash");
            hash_ms.push(ms(t.elapsed()));
        }
        let h = median(hash_ms.clone());
        let verdict = if (TARGET_MS.0..=TARGET_MS.1).contains(&h) { "within" } else { "outside" };
        println!(
            "hash t={t_cost}: median {h:.0} ms (min {:.0}, max {:.0}) over {ROUNDS} runs: {verdict} the {:.0}-{:.0} ms target",
            hash_ms.iter().cloned().fold(f64::INFINITY, f64::min),
            hash_ms.iter().cloned().fold(0.0, f64::max),
            TARGET_MS.0,
            TARGET_MS.1
        );
    }

    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        assert!(!passwords::verify(&limiter, Some(&phc), "wrong password").await.expect("verify"));
        known.push(ms(t.elapsed()));
        let t = Instant::now();
        assert!(!passwords::verify(&limiter, None, "wrong password").await.expect("verify"));
        unknown.push(ms(t.elapsed()));
    }
    let (k, u) = (median(known), median(unknown));
    println!(
        "verify: known user {k:.0} ms, unknown user {u:.0} ms (difference {:.1} %)",
        (k - u).abs() / k.max(u) * 100.0
    );

    // Login storm vs. a light task ticking every 10 ms.
    let storm = 4 * cpus;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut ticks = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                tokio::time::sleep(Duration::from_millis(10)).await;
                worst = worst.max(t.elapsed().saturating_sub(Duration::from_millis(10)));
                ticks += 1;
            }
            (worst, ticks)
        })
    };
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..storm {
        let (limiter, phc) = (Arc::clone(&limiter), phc.clone());
        tasks.push(tokio::spawn(async move { passwords::verify(&limiter, Some(&phc), "wrong").await }));
    }
    for task in tasks {
        task.await.expect("join").expect("verify");
    }
    let storm_time = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, ticks) = ticker.await.expect("ticker");
    println!(
        "storm:  {storm} concurrent logins took {:.1} s; a 10 ms ticker ran {ticks} times, worst extra delay {:.1} ms",
        storm_time.as_secs_f64(),
        ms(worst)
    );
}
