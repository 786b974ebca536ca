//! Soak: the mixed flow (create → anonymous answer → get) held at half its peak rate for
//! ten minutes, to show that nothing accumulates — no errors, resident memory flat once
//! the steady state is reached, latency stable.
//!
//! It starts the release server on a fresh data directory (challenges live 30 s, ended
//! ones are kept 60 s, so the steady state holds about 90 s of flows), measures the peak
//! flow rate over `BENCH_PEAK_SECONDS` with `BENCH_CONNECTIONS` closed-loop connections,
//! then paces flows at half of it (or `BENCH_RATE`) for `BENCH_SOAK_SECONDS`. It prints,
//! per 30 s, the flows done, the errors, p50/p99 flow latency of those 30 s and the
//! server's `VmRSS`, with each minute's p99 on the minute's rows, and then a summary:
//! errors, the RSS spread after the warm-up (the first `BENCH_WARMUP_SECONDS`) and the
//! spread of the per-minute p99 after it.
//!
//! Run: `cargo bench --bench soak`. Knobs: `BENCH_SOAK_SECONDS` (600),
//! `BENCH_PEAK_SECONDS` (10), `BENCH_WARMUP_SECONDS` (180), `BENCH_CONNECTIONS` (32),
//! `BENCH_RATE` (flows per second; default half the measured peak).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{env_or, nearest_rank, ReleaseServer};

const TTL_SECONDS: u64 = 30;
const RETENTION_SECONDS: u64 = 60;
const SAMPLE: Duration = Duration::from_secs(30);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// What the flows report, shared by every connection.
#[derive(Default)]
struct Tally {
    flows: AtomicU64,
    errors: AtomicU64,
    /// Flow latencies in microseconds since the last sample.
    latencies: Mutex<Vec<u32>>,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn record(&self, started: Instant, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.flows.fetch_add(1, Ordering::Relaxed);
                let micros = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                self.latencies.lock().unwrap().push(micros);
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.first_error.lock().unwrap().get_or_insert(e);
            }
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Arc<str>,
}

impl Client {
    async fn flow(&self) -> Result<(), String> {
        let created = self
            .http
            .post(format!("{}/api/v1/challenges", self.base))
            .bearer_auth(&*self.token)
            .json(
                &serde_json::json!({"type": "token", "user_id": "u-1", "ttl_seconds": TTL_SECONDS}),
            )
            .send()
            .await
            .map_err(|e| format!("create: {e}"))?;
        if created.status() != 201 {
            return Err(format!("create answered {}", created.status()));
        }
        let created: Value = created.json().await.map_err(|e| e.to_string())?;
        let id = created["id"].as_str().ok_or("no id")?;
        let answer_token = created["actors"][0]["answer_token"]
            .as_str()
            .ok_or("no answer token")?;
        let answered = self
            .http
            .post(format!("{}/api/v1/challenges/{id}/answer", self.base))
            .json(&serde_json::json!({"answer_token": answer_token}))
            .send()
            .await
            .map_err(|e| format!("answer: {e}"))?;
        if answered.status() != 200 {
            return Err(format!("answer answered {}", answered.status()));
        }
        let read = self
            .http
            .get(format!("{}/api/v1/challenges/{id}", self.base))
            .bearer_auth(&*self.token)
            .send()
            .await
            .map_err(|e| format!("get: {e}"))?;
        if read.status() != 200 {
            return Err(format!("get answered {}", read.status()));
        }
        read.bytes().await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

async fn run() {
    let soak = Duration::from_secs(env_or("BENCH_SOAK_SECONDS", 600));
    let peak_for = Duration::from_secs(env_or("BENCH_PEAK_SECONDS", 10));
    let warmup = Duration::from_secs(env_or("BENCH_WARMUP_SECONDS", 180));
    let connections: usize = env_or("BENCH_CONNECTIONS", 32);

    let data = tempfile::tempdir().unwrap();
    let env = [
        (
            "CHALLENGE_SERVER__LIMITS__RETENTION_SECONDS",
            RETENTION_SECONDS.to_string(),
        ),
        (
            "CHALLENGE_SERVER__LIMITS__ANONYMOUS_ANSWERS_PER_IP_PER_MINUTE",
            "0".to_string(),
        ),
    ];
    let server = ReleaseServer::start(data.path(), &env).await;
    let client = Arc::new(Client {
        // Idle connections are dropped well before the server's keep-alive (5 s) closes
        // them, so that no request is sent on a connection the server is closing.
        http: reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        base: server.base.clone(),
        token: server.token("challenge:post challenge:get").into(),
    });

    // The peak: closed-loop flows on every connection.
    let peak_tally = Arc::new(Tally::default());
    let until = Instant::now() + peak_for;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, tally) = (client.clone(), peak_tally.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let started = Instant::now();
                    tally.record(started, client.flow().await);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let peak = peak_tally.flows.load(Ordering::Relaxed) as f64 / peak_for.as_secs_f64();
    let rate: f64 = env_or("BENCH_RATE", peak / 2.0);
    println!(
        "## Soak: create → answer → get at {rate:.0} flows/s (peak {peak:.0}, {} errors in the peak run) for {} s, {connections} connections",
        peak_tally.errors.load(Ordering::Relaxed),
        soak.as_secs()
    );
    println!();
    println!("| at s | flows | errors | p50 ms | p99 ms | p99 of the minute ms | server RSS MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");

    // The soak: each connection runs its share of flows on a fixed schedule (catching
    // up at once when it falls behind, never getting ahead).
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            let (client, tally) = (client.clone(), tally.clone());
            tokio::spawn(async move {
                let mut due = started + interval.mul_f64(i as f64 / connections as f64);
                while due < started + soak {
                    tokio::time::sleep_until(due.into()).await;
                    let at = Instant::now();
                    tally.record(at, client.flow().await);
                    due += interval;
                }
            })
        })
        .collect();

    let mut samples = Vec::new();
    let mut minutes = Vec::new();
    let mut minute: Vec<u32> = Vec::new();
    let (mut flows_before, mut errors_before) = (0, 0);
    let mut at = SAMPLE;
    while at <= soak {
        tokio::time::sleep_until((started + at).into()).await;
        let mut latencies = std::mem::take(&mut *tally.latencies.lock().unwrap());
        latencies.sort_unstable();
        let flows = tally.flows.load(Ordering::Relaxed);
        let errors = tally.errors.load(Ordering::Relaxed);
        let ms = |q| nearest_rank(&latencies, q).map_or(0.0, |m| m as f64 / 1000.0);
        let rss = server.rss_bytes() as f64 / 1048576.0;
        let (p50, p99) = (ms(0.50), ms(0.99));
        minute.extend_from_slice(&latencies);
        let of_minute = if at.as_secs() % 60 == 0 {
            minute.sort_unstable();
            let p99 = nearest_rank(&minute, 0.99).map_or(0.0, |m| m as f64 / 1000.0);
            minute.clear();
            minutes.push((at, p99));
            format!("{p99:.2}")
        } else {
            String::new()
        };
        println!(
            "| {} | {} | {} | {p50:.2} | {p99:.2} | {of_minute} | {rss:.1} |",
            at.as_secs(),
            flows - flows_before,
            errors - errors_before
        );
        samples.push((at, rss));
        (flows_before, errors_before) = (flows, errors);
        at += SAMPLE;
    }
    for worker in workers {
        worker.await.unwrap();
    }

    let after: Vec<_> = samples.iter().filter(|(at, _)| *at > warmup).collect();
    let spread = |values: Vec<f64>| {
        let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = values.iter().cloned().fold(0.0, f64::max);
        (min, max)
    };
    let (rss_min, rss_max) = spread(after.iter().map(|(_, rss)| *rss).collect());
    let (p99_min, p99_max) = spread(
        minutes
            .iter()
            .filter(|(at, _)| *at > warmup)
            .map(|(_, p99)| *p99)
            .collect(),
    );
    println!();
    println!(
        "- {} flows, {} errors{}",
        tally.flows.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
        tally
            .first_error
            .lock()
            .unwrap()
            .as_ref()
            .map_or(String::new(), |e| format!(" (first: {e})"))
    );
    println!(
        "- after the {} s warm-up: RSS {rss_min:.1}–{rss_max:.1} MiB ({:+.1} % from the lowest to the highest), p99 per minute {p99_min:.2}–{p99_max:.2} ms",
        warmup.as_secs(),
        100.0 * (rss_max - rss_min) / rss_min
    );
}
