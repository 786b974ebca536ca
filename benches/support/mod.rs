//! What the benchmarks share: the release server as a child process on a free loopback
//! port (started, polled until ready, measured, stopped), bearer tokens from its `token`
//! subcommand, knobs from the environment, and the one definition of a percentile they
//! print.

// Each benchmark is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_challenge-server");

/// How often a wait (for readiness, for an exit) looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long a fresh server may take to answer `/readyz`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM may take before the server is killed.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(120);

/// The release server as a child process, with `warn` logging (on the benchmark's
/// stderr); killed when dropped if it is still running, so a panicking benchmark leaves
/// nothing behind.
pub struct ReleaseServer {
    child: Child,
    pub addr: SocketAddr,
    pub base: String,
    spawned_at: Instant,
}

impl ReleaseServer {
    /// Starts it on `data` with the extra `env` on a free port, and waits until
    /// `/readyz` answers 200.
    pub async fn start(data: &Path, env: &[(&str, String)]) -> ReleaseServer {
        let mut server = ReleaseServer::spawn(data, free_local_addr(), env);
        server.wait_ready(READY_TIMEOUT).await;
        server
    }

    /// Starts it on `data`, listening on `addr`, with the extra `env`; does not wait.
    pub fn spawn(data: &Path, addr: SocketAddr, env: &[(&str, String)]) -> ReleaseServer {
        let spawned_at = Instant::now();
        let mut command = Command::new(SERVER_BIN);
        command
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data)
            .env("CHALLENGE_SERVER__LOG__LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {SERVER_BIN}: {e}"));
        ReleaseServer {
            child,
            addr,
            base: format!("http://{addr}"),
            spawned_at,
        }
    }

    /// Polls `/readyz` until it answers 200; returns the time since the process was
    /// spawned. Panics if the server exits first or is not ready within `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("build the readiness client");
        let readyz = format!("{}/readyz", self.base);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server process") {
                panic!("the server exited before it was ready: {status}");
            }
            if matches!(http.get(&readyz).send().await, Ok(r) if r.status() == 200) {
                return self.spawned_at.elapsed();
            }
            assert!(
                self.spawned_at.elapsed() < timeout,
                "the server was not ready within {} s",
                timeout.as_secs()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// A bearer token for tenant `bench` with `scopes`, valid for an hour.
    pub fn token(&self, scopes: &str) -> String {
        mint_token(scopes, 3600)
    }

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

    /// The CPU time the server process has used so far, user and system, over all its
    /// threads (`/proc/<pid>/stat`, in the kernel's 100 Hz clock ticks).
    pub fn cpu_time(&self) -> Duration {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        // The command name is in parentheses and may hold spaces: count fields after it.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks: u64 = [11, 12]
            .iter()
            .map(|&i| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("no CPU times in {path}"))
            })
            .sum();
        Duration::from_millis(ticks * 10)
    }

    /// Sends SIGTERM and waits for the exit; kills the process if it outlasts
    /// [`SHUTDOWN_TIMEOUT`]. Returns how long the shutdown took and how the process ended
    /// (`None`: killed).
    pub async fn terminate(&mut self) -> (Duration, Option<ExitStatus>) {
        let asked = Instant::now();
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|status| status.success());
        if !signalled {
            eprintln!("warning: `kill -TERM {pid}` failed; killing the server");
            let _ = self.child.kill();
        }
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server process") {
                return (asked.elapsed(), Some(status));
            }
            if asked.elapsed() > SHUTDOWN_TIMEOUT {
                eprintln!(
                    "warning: the server did not exit within {} s of SIGTERM; killing it",
                    SHUTDOWN_TIMEOUT.as_secs()
                );
                let _ = self.child.kill();
                let _ = self.child.wait();
                return (asked.elapsed(), None);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_local_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port on 127.0.0.1")
}

/// Mints a bearer JWT for tenant `bench` with the `challenge-server token` command.
pub fn mint_token(scopes: &str, ttl_seconds: u64) -> String {
    let output = Command::new(SERVER_BIN)
        .args(["token", "--tenant", "bench", "--scope", scopes])
        .args(["--ttl", &ttl_seconds.to_string()])
        .env("CHALLENGE_SERVER__LOG__LEVEL", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {SERVER_BIN} token: {e}"));
    assert!(
        output.status.success(),
        "`challenge-server token` failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("the token is UTF-8");
    // The token is the last line printed; anything logged before it is not.
    stdout
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .expect("`challenge-server token` printed a token")
        .to_owned()
}

/// The environment variable `name` parsed, else `default`; a value that does not parse
/// stops the benchmark rather than running it with a knob silently ignored.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The `q` quantile of sorted samples by nearest rank: the smallest sample with at least
/// a share `q` of the samples at or below it. `None` without samples.
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

/// The `p` quantile of sorted samples ([`nearest_rank`]); NaN without samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    nearest_rank(sorted, p).unwrap_or(f64::NAN)
}
