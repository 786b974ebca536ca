//! Time from answer to action: how long after a one-time-use action challenge is
//! approved does the action's HTTP request reach its receiver, on loopback.
//!
//! Starts the release server (outbound policy opened for loopback) and a receiving HTTP
//! server in this process; for each challenge it records the instant just before the
//! answer request is sent and the instant the receiver reads the action's request
//! (matched by `X-Challenge-Id`), and prints p50/p99/max of the difference, plus the
//! answer request's own latency. The answer is durable before the reply and the action
//! starts after that, so the difference includes one group-commit flush.
//!
//! Run: `cargo bench --bench actions`. Knobs: `BENCH_ACTIONS` (challenges, default
//! 2000), `BENCH_CONCURRENCY` (at once, default 8).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::{env_or, percentile, ReleaseServer};
use tokio::net::TcpListener;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Reads requests off one connection, notes when each arrived, answers 200.
async fn serve(mut stream: tokio::net::TcpStream, arrivals: Arrivals) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let arrived = Instant::now();
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        if let Some(id) = header("x-challenge-id") {
            arrivals.lock().unwrap().insert(id, arrived);
        }
        buf.drain(..head_end + length);
        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if stream.write_all(reply).await.is_err() {
            return;
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let count = env_or("BENCH_ACTIONS", 2000);
    let concurrency = env_or("BENCH_CONCURRENCY", 8);

    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_port = receiver.local_addr().unwrap().port();
    let arrivals: Arrivals = Arc::default();
    {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = receiver.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, arrivals.clone()));
            }
        });
    }

    let data = std::env::temp_dir().join(format!("challenge-bench-actions-{}", std::process::id()));
    let server = ReleaseServer::start(
        &data,
        &[("CHALLENGE_SERVER__ACTIONS__ALLOW_PRIVATE", "true".into())],
    )
    .await;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let bearer = server.token("challenge:post challenge:get");

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, base, bearer, arrivals, next) = (
            http.clone(),
            base.clone(),
            bearer.clone(),
            arrivals.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let created: serde_json::Value = http
                    .post(format!("{base}/api/v1/challenges"))
                    .bearer_auth(&bearer)
                    .json(&serde_json::json!({"type": "one_time_use_action", "user_id": "u", "ttl_seconds": 600,
                        "actions": {"approved": [{"method": "POST", "uri": format!("http://127.0.0.1:{receiver_port}/act"),
                                                  "scopes": ["orders:approve"]}]}}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let id = created["id"].as_str().unwrap().to_string();
                let token = created["actors"][0]["answer_token"].as_str().unwrap().to_string();
                let sent = Instant::now();
                let answered = http
                    .post(format!("{base}/api/v1/challenges/{id}/answer"))
                    .json(&serde_json::json!({"answer_token": token}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answered.status(), 200);
                let replied = sent.elapsed();
                let arrived = loop {
                    if let Some(at) = arrivals.lock().unwrap().remove(&id) {
                        break at;
                    }
                    assert!(sent.elapsed() < Duration::from_secs(30), "action never arrived");
                    tokio::time::sleep(Duration::from_micros(200)).await;
                };
                samples.push((arrived.duration_since(sent).as_secs_f64() * 1e3, replied.as_secs_f64() * 1e3));
            }
            samples
        }));
    }
    let mut to_action = Vec::new();
    let mut answer = Vec::new();
    for w in workers {
        for (a, r) in w.await.unwrap() {
            to_action.push(a);
            answer.push(r);
        }
    }
    to_action.sort_by(f64::total_cmp);
    answer.sort_by(f64::total_cmp);
    println!("\n## Answer → action request on loopback ({count} challenges, {concurrency} at a time, token-signing action)\n");
    println!("| measure | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|");
    for (name, s) in [
        ("answer sent → action request received", &to_action),
        ("answer request latency", &answer),
    ] {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} |",
            percentile(s, 0.5),
            percentile(s, 0.99),
            s.last().copied().unwrap_or(f64::NAN)
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
