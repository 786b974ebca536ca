//! Memory of ended challenges: an ended challenge keeps no actor, only its final view
//! until its retention ends, so it must cost far less than a live one.
//!
//! Starts the release server twice on fresh data directories. On the first it creates
//! token challenges and cancels each (so all are kept for their one-hour retention); on
//! the second it creates as many live ones. Each server takes two rounds of
//! `BENCH_FINISHED` challenges, and the bench prints the growth of the server's resident
//! set (`VmRSS`) per challenge in each round:
//! - the first round, from a fresh start, also fills the fixed-size caches every
//!   challenge shares (sled's page cache, `storage.cache_capacity_bytes`, 64 MiB by
//!   default, and the allocator's first arenas), which are not a per-challenge cost;
//! - the second round, on top of the first, is what each further challenge costs.
//!
//! The target: an ended challenge at most 25 % of a live one.
//!
//! Run: `cargo bench --bench retention`. Knobs: `BENCH_FINISHED` (challenges per round,
//! default 200000), `BENCH_CONNECTIONS` (concurrent requests, default 32).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

mod support;
use support::{env_or, ReleaseServer};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let count = env_or("BENCH_FINISHED", 200_000);
    let connections = env_or("BENCH_CONNECTIONS", 32);
    println!("## Memory per kept challenge: token challenges, two rounds of {count}, {connections} connections");
    println!();
    println!("| challenges | round | server RSS before MiB | after MiB | bytes per challenge | seconds |");
    println!("|---|---|---:|---:|---:|---:|");
    let ended = measure(
        "created and cancelled (ended, kept)",
        count,
        connections,
        true,
    )
    .await;
    let live = measure("created (live)", count, connections, false).await;
    println!();
    for (round, name) in [
        (0, "first round (fresh server, caches filling)"),
        (1, "second round (each further challenge)"),
    ] {
        println!(
            "- {name}: an ended challenge costs {:.0} bytes, {:.1} % of a live one ({:.0} bytes)",
            ended[round],
            100.0 * ended[round] / live[round],
            live[round]
        );
    }
}

/// Creates two rounds of `count` challenges (cancelling each when `cancel`) on a fresh
/// server and returns the RSS growth per challenge in each round.
async fn measure(label: &str, count: usize, connections: usize, cancel: bool) -> [f64; 2] {
    let data = tempfile::tempdir().unwrap();
    let server = ReleaseServer::start(data.path(), &[]).await;
    let token: Arc<str> = server
        .token("challenge:post challenge:get challenge:delete")
        .into();
    let http = reqwest::Client::new();
    let mut per = [0.0; 2];
    for (round, per) in per.iter_mut().enumerate() {
        let before = server.rss_bytes();
        let started = Instant::now();
        create(&server.base, &http, &token, count, connections, cancel).await;
        let seconds = started.elapsed().as_secs_f64();
        // Settling is asynchronous (the actor hands over its view, then stops): let it finish.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let after = server.rss_bytes();
        *per = after.saturating_sub(before) as f64 / count as f64;
        println!(
            "| {count} {label} | {} | {:.1} | {:.1} | {:.0} | {seconds:.1} |",
            round + 1,
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            *per
        );
    }
    per
}

/// Creates `count` token challenges over `connections` concurrent requests, cancelling
/// each when `cancel`.
async fn create(
    base: &str,
    http: &reqwest::Client,
    token: &Arc<str>,
    count: usize,
    connections: usize,
    cancel: bool,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (http, token, next) = (http.clone(), token.clone(), next.clone());
            let base = base.to_string();
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let created: Value = http
                        .post(format!("{base}/api/v1/challenges"))
                        .bearer_auth(&*token)
                        .json(&serde_json::json!({"type": "token", "user_id": "u-1", "ttl_seconds": 3600}))
                        .send()
                        .await
                        .expect("create")
                        .json()
                        .await
                        .expect("a created challenge");
                    let id = created["id"].as_str().expect("an id");
                    if cancel {
                        let r = http
                            .delete(format!("{base}/api/v1/challenges/{id}"))
                            .bearer_auth(&*token)
                            .send()
                            .await
                            .expect("cancel");
                        assert_eq!(r.status(), 200, "cancelled");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}
