//! Delivery throughput and the cost of delivering: how many code emails per second the
//! server hands to a local SMTP server (Python's aiosmtpd, as in the tests), and how much
//! latency delivery adds to create, against a `token` create in the same run.
//!
//! The email is sent after the create is acknowledged, on a task, so a create of an
//! `email_otp` challenge pays for validation, code generation, rendering the message once
//! and the durable write — not for SMTP. Throughput is measured from the first create to
//! the last message the SMTP server has written to disk.
//!
//! Run: `cargo bench --bench delivery` (needs python3 with aiosmtpd, as `.ci/test`
//! installs). Knobs: `BENCH_EMAILS` (default 3000), `BENCH_CONCURRENCY` (default 16).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;
use support::{env_or, percentile, ReleaseServer};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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

/// Creates `count` challenges from `body` at `concurrency`; returns sorted latencies (ms).
async fn creates(
    http: &reqwest::Client,
    base: &str,
    bearer: &str,
    body: serde_json::Value,
    count: usize,
    concurrency: usize,
) -> Vec<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, base, bearer, body, next) = (
            http.clone(),
            base.to_string(),
            bearer.to_string(),
            body.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let started = Instant::now();
                let r = http
                    .post(format!("{base}/api/v1/challenges"))
                    .bearer_auth(&bearer)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
                samples.push(started.elapsed().as_secs_f64() * 1e3);
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all.sort_by(f64::total_cmp);
    all
}

async fn run() {
    let count = env_or("BENCH_EMAILS", 3000);
    let concurrency = env_or("BENCH_CONCURRENCY", 16);
    let work =
        std::env::temp_dir().join(format!("challenge-bench-delivery-{}", std::process::id()));
    let mails = work.join("mail");
    std::fs::create_dir_all(&mails).unwrap();

    let mut sink = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/smtp_sink.py"
        ))
        .arg("0")
        .arg(&mails)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with aiosmtpd");
    let mut line = String::new();
    BufReader::new(sink.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let smtp_port: u16 = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .expect("the SMTP sink is ready");
    let _sink = Kill(sink);

    let server = ReleaseServer::start(
        &work.join("data"),
        &[
            ("CHALLENGE_SERVER__EMAIL__SMTP_HOST", "127.0.0.1".into()),
            ("CHALLENGE_SERVER__EMAIL__SMTP_PORT", smtp_port.to_string()),
            ("CHALLENGE_SERVER__EMAIL__TLS", "none".into()),
            (
                "CHALLENGE_SERVER__DELIVERY__PER_RECIPIENT_DAILY_CAP",
                "0".into(),
            ),
            (
                "CHALLENGE_SERVER__DELIVERY__PER_RECIPIENT_DAILY_CAP_PER_TENANT",
                "0".into(),
            ),
        ],
    )
    .await;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let bearer = server.token("challenge:post");

    let token = creates(
        &http,
        &base,
        &bearer,
        serde_json::json!({"type": "token", "user_id": "u", "ttl_seconds": 600}),
        count,
        concurrency,
    )
    .await;
    let started = Instant::now();
    let email = creates(
        &http,
        &base,
        &bearer,
        serde_json::json!({"type": "email_otp", "user_id": "u", "ttl_seconds": 600,
            "recipient": {"email": "bench@example.com"}, "details": {"message": "Sign in to Example"}}),
        count,
        concurrency,
    )
    .await;
    let created_in = started.elapsed();
    let delivered = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
                })
                .count()
            })
            .unwrap_or(0)
    };
    while delivered(&mails) < count {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {} of {count} emails arrived",
            delivered(&mails)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_in = started.elapsed();
    drop(server);

    println!("\n## Delivery: {count} code emails to a local SMTP server, {concurrency} creates at a time\n");
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| emails delivered per second (first create → last email on the SMTP server's disk) | {:.0} |", count as f64 / all_in.as_secs_f64());
    println!(
        "| creates per second, email_otp | {:.0} |",
        count as f64 / created_in.as_secs_f64()
    );
    println!("\n| create latency | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    println!(
        "| token | {:.3} | {:.3} |",
        percentile(&token, 0.5),
        percentile(&token, 0.99)
    );
    println!(
        "| email_otp | {:.3} | {:.3} |",
        percentile(&email, 0.5),
        percentile(&email, 0.99)
    );
    println!(
        "| added by delivery | {:+.3} | {:+.3} |",
        percentile(&email, 0.5) - percentile(&token, 0.5),
        percentile(&email, 0.99) - percentile(&token, 0.99)
    );
    let _ = std::fs::remove_dir_all(&work);
}
