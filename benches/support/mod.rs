//! What the `actions` and `delivery` benchmarks share: the release server as a child
//! process on a free loopback port, a bearer token from its `token` subcommand, and the
//! small statistics they print.

// Each benchmark compiles this module and uses only part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_challenge-server");

/// The release server; killed when dropped.
pub struct ReleaseServer {
    child: Child,
    pub base: String,
}

impl ReleaseServer {
    /// Starts it on `data` with `warn` logging and the extra `env`, and waits (polling)
    /// until `/readyz` answers 200.
    pub async fn start(data: &Path, env: &[(&str, String)]) -> ReleaseServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(SERVER_BIN);
        command
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .env("CHALLENGE_SERVER__LOG__LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let server = ReleaseServer {
            child: command.spawn().expect("start the server"),
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        while !matches!(http.get(format!("{}/readyz", server.base)).send().await, Ok(r) if r.status() == 200)
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "server not ready"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server
    }

    /// A bearer token for tenant `bench` with `scopes`.
    pub fn token(&self, scopes: &str) -> String {
        let output = Command::new(SERVER_BIN)
            .args([
                "token", "--tenant", "bench", "--scope", scopes, "--ttl", "3600",
            ])
            .output()
            .expect("run the token subcommand");
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }
}

impl ReleaseServer {
    /// The server's resident set size (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no VmRSS line in {path}"))
    }
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
