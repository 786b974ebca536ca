//! Load benchmark: challenge-server measured over real HTTP, as a client sees it.
//!
//! It starts the release server binary on a fresh data directory, waits for
//! `GET /readyz` to answer 200, and drives seven scenarios in turn, each for a fixed
//! time over keep-alive HTTP/1.1 connections on 127.0.0.1:
//!
//! 1. `healthz` — `GET /healthz`: the ceiling of the HTTP stack, no engine involved;
//! 2. `create` — `POST /api/v1/challenges` (type `token`), keeping every id and answer token;
//! 3. `answer` — anonymous `POST /api/v1/challenges/{id}/answer`, each created challenge
//!    answered exactly once, until the time is up or the created ones run out;
//! 4. `totp answer` — a bearer `POST /api/v1/challenges/{id}/answer` with a TOTP code:
//!    `BENCH_TOTP` users each enroll and verify a factor and get one `totp` challenge
//!    beforehand (not timed), then each challenge is answered once with the factor's
//!    next code (a code is accepted once per step, so every answer needs its own factor);
//! 5. `push answer` — a device's `POST /api/v1/devices/challenges/{id}/answer`: `BENCH_PUSH`
//!    users each enroll and verify a P-256 device key and get one `push` challenge, which
//!    the device lists (untimed); then each is
//!    approved once with the device's own JWT and signature, both made beforehand so
//!    the client's signing is not timed;
//! 6. `get` — `GET /api/v1/challenges/{id}` of challenges picked at random;
//! 7. `flow` — create → answer → get in sequence on one connection; its rate is in flows
//!    per second and its latency is that of the whole flow.
//!
//! For each it prints, as a markdown table, the rate, p50/p99/p99.9 latency, the errors
//! (an unexpected status is counted and listed, never fatal), the rate as a share of
//! `healthz`'s, and the server's CPU time per request (its process's user and system
//! time over the scenario, from `/proc`, divided by the requests answered: a cost that
//! other load on the machine moves far less than it moves the rate), then the ratio of
//! `answer`'s p99 to `healthz`'s.
//!
//! Then, on a second fresh server, it measures memory per live challenge — server RSS
//! (`VmRSS`) before any challenge, at 100,000 live challenges and at `BENCH_LIVE` — and
//! how long a restart takes to restore them all from disk: SIGTERM, wait for the exit,
//! start again on the same data directory, and time spawn → `/readyz` answering 200.
//!
//! Run it with `cargo bench --bench load`. Knobs, from the environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_CONNECTIONS` | 32 | concurrent keep-alive connections in each scenario |
//! | `BENCH_SECONDS` | 10 | duration of each scenario, in seconds (fractions allowed) |
//! | `BENCH_MEMORY` | 1 | `0` skips the memory and restore measurement |
//! | `BENCH_LIVE` | 1000000 | live challenges created for the memory measurement |
//! | `BENCH_TOTP` | 20000 | factors (and `totp` challenges) prepared for `totp answer` |
//! | `BENCH_PUSH` | 5000 | device keys (and `push` challenges) prepared for `push answer`; their device tokens last 5 minutes, so preparing must take less |
//!
//! The client is deliberately small — a raw HTTP/1.1 client on tokio with two worker
//! threads — because it shares the machine's cores with the server it measures. The
//! server runs with `warn` logging, a live-challenge quota of 3,000,000 and the
//! per-address limit on anonymous answers switched off, so that the numbers show the
//! engine, not a quota or a rate limit.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::{
    env_or, free_local_addr, mint_token, nearest_rank, ReleaseServer, POLL_INTERVAL, READY_TIMEOUT,
};

const SCOPES: &str = "challenge:post challenge:get challenge:answer challenge:delete \
     challenge:complete challenge:enrollment:post";
/// TOTP factors of the `totp answer` scenario: a minute per step and two steps of skew,
/// so the code of the step after the verification's stays good for two minutes or more.
const TOTP_PERIOD_SECONDS: u64 = 60;

/// Client runtime threads: the machine has two cores, shared with the server.
const CLIENT_THREADS: usize = 2;
/// Connections that fill the server with live challenges in the memory measurement.
const MEMORY_CONNECTIONS: usize = 64;
/// The first memory checkpoint, in live challenges.
const MEMORY_CHECKPOINT: usize = 100_000;
const CHALLENGE_TTL_SECONDS: u32 = 3600;

/// How long a restart may take to restore every live challenge.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(900);
/// A request taking longer than this counts as an error (and its connection is dropped),
/// so a stuck server cannot hang the benchmark.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A filling connection gives up after this many failures in a row.
const MAX_CONSECUTIVE_ERRORS: u32 = 100;
const READ_CHUNK: usize = 8 * 1024;

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CLIENT_THREADS)
        .enable_all()
        .build()
        .expect("build the client runtime");
    runtime.block_on(run(&settings));
}

async fn run(settings: &Settings) {
    let bearer: Arc<str> = mint_token(SCOPES, 86_400).into();

    let data_dir = DataDir::create("scenarios");
    let mut server = ReleaseServer::spawn(data_dir.path(), free_local_addr(), &server_env());
    let ready_in = server.wait_ready(READY_TIMEOUT).await;
    eprintln!("server ready in {:.3} s", ready_in.as_secs_f64());

    let target = Target::new(server.addr, bearer.clone());
    let mut flushes = Vec::new();
    let healthz = with_cpu(&server, healthz_scenario(&target, settings)).await;
    let before = flush_stats(&target).await;
    let cpu = server.cpu_time();
    let (mut create, pool) = create_scenario(&target, settings).await;
    create.server_cpu = Some(server.cpu_time().saturating_sub(cpu));
    let after_create = flush_stats(&target).await;
    flushes.push(("create", after_create.since(&before)));
    let pool = Arc::new(pool);
    let answer = with_cpu(&server, answer_scenario(&target, settings, &pool)).await;
    let after_answer = flush_stats(&target).await;
    flushes.push(("answer", after_answer.since(&after_create)));
    let totp_pool: Vec<TotpChallenge> = prepare(&target, settings, settings.totp).await;
    let before_totp = flush_stats(&target).await;
    let totp = with_cpu(
        &server,
        prepared_answer_scenario(&target, settings, totp_pool),
    )
    .await;
    flushes.push((
        "totp answer",
        flush_stats(&target).await.since(&before_totp),
    ));
    let push_pool: Vec<PushChallenge> = prepare(&target, settings, settings.push).await;
    let before_push = flush_stats(&target).await;
    let push = with_cpu(
        &server,
        prepared_answer_scenario(&target, settings, push_pool),
    )
    .await;
    flushes.push((
        "push answer",
        flush_stats(&target).await.since(&before_push),
    ));
    let get = with_cpu(&server, get_scenario(&target, settings, &pool)).await;
    let before_flow = flush_stats(&target).await;
    let flow = with_cpu(&server, flow_scenario(&target, settings)).await;
    flushes.push(("flow", flush_stats(&target).await.since(&before_flow)));
    server.terminate().await;
    drop(server);
    drop(data_dir);

    print_scenarios(settings, &[healthz, create, answer, totp, push, get, flow]);
    println!();
    println!("Group commit (from the server's /metrics): where a durable request waits.");
    println!();
    println!("| scenario | flushes | mean flush ms | mean writers per flush |");
    println!("|---|---:|---:|---:|");
    for (name, f) in &flushes {
        let mean_ms = if f.count > 0.0 {
            f.seconds / f.count * 1e3
        } else {
            0.0
        };
        let batch = if f.count > 0.0 {
            f.writers / f.count
        } else {
            0.0
        };
        println!("| {name} | {:.0} | {mean_ms:.3} | {batch:.1} |", f.count);
    }

    if settings.memory {
        memory_and_restore(settings, bearer).await;
    }
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

struct Settings {
    connections: usize,
    duration: Duration,
    memory: bool,
    live: usize,
    totp: usize,
    push: usize,
}

impl Settings {
    fn from_env() -> Self {
        let connections: usize = env_or("BENCH_CONNECTIONS", 32);
        let seconds: f64 = env_or("BENCH_SECONDS", 10.0);
        let live: usize = env_or("BENCH_LIVE", 1_000_000);
        assert!(connections > 0, "BENCH_CONNECTIONS must be at least 1");
        assert!(
            seconds.is_finite() && seconds > 0.0,
            "BENCH_SECONDS must be a positive number of seconds"
        );
        Self {
            connections,
            duration: Duration::from_secs_f64(seconds),
            memory: !matches!(std::env::var("BENCH_MEMORY").as_deref(), Ok("0")),
            live,
            totp: env_or("BENCH_TOTP", 20_000),
            push: env_or("BENCH_PUSH", 5_000),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The data directory and the server's settings
// ---------------------------------------------------------------------------------------

/// A temporary data directory, removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn create(label: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "challenge-server-bench-{}-{label}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create data dir {}: {e}", path.display()));
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server's settings for every measurement: a live-challenge quota well above
/// `BENCH_LIVE`, and no per-address limit on anonymous answers (the answer scenario sends
/// every one from one address).
fn server_env() -> [(&'static str, String); 2] {
    [
        (
            "CHALLENGE_SERVER__LIMITS__MAX_LIVE_CHALLENGES",
            "3000000".to_owned(),
        ),
        (
            "CHALLENGE_SERVER__LIMITS__ANONYMOUS_ANSWERS_PER_IP_PER_MINUTE",
            "0".to_owned(),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client
// ---------------------------------------------------------------------------------------

/// One keep-alive connection. Bytes read past the end of a response stay in `read_buf`
/// for the next one.
struct Conn {
    stream: TcpStream,
    host: String,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    /// False once the server said it will close the connection.
    reusable: bool,
}

struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: addr.to_string(),
            read_buf: Vec::with_capacity(READ_CHUNK),
            write_buf: Vec::with_capacity(512),
            reusable: true,
        })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> io::Result<Response> {
        self.encode_request(method, path, bearer, body);
        self.stream.write_all(&self.write_buf).await?;
        self.read_response().await
    }

    fn encode_request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) {
        let out = &mut self.write_buf;
        out.clear();
        for part in [
            method,
            " ",
            path,
            " HTTP/1.1\r\nHost: ",
            self.host.as_str(),
            "\r\n",
        ] {
            out.extend_from_slice(part.as_bytes());
        }
        if let Some(token) = bearer {
            for part in ["Authorization: Bearer ", token, "\r\n"] {
                out.extend_from_slice(part.as_bytes());
            }
        }
        match body {
            Some(body) => {
                let length = body.len().to_string();
                for part in [
                    "Content-Type: application/json\r\nContent-Length: ",
                    length.as_str(),
                    "\r\n\r\n",
                    body,
                ] {
                    out.extend_from_slice(part.as_bytes());
                }
            }
            None => out.extend_from_slice(b"\r\n"),
        }
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        let head_len = loop {
            if let Some(at) = find(&self.read_buf, b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await?;
        };
        let head = Head::parse(&self.read_buf[..head_len])?;
        self.read_buf.drain(..head_len);
        if head.close {
            self.reusable = false;
        }
        let body = match head.framing {
            Framing::Length(length) => self.take(length).await?,
            Framing::Chunked => self.read_chunked().await?,
            Framing::UntilClose => {
                self.reusable = false;
                while self.read_more().await? > 0 {}
                std::mem::take(&mut self.read_buf)
            }
        };
        Ok(Response {
            status: head.status,
            body,
        })
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_len = self.line().await?;
            let size_line = std::str::from_utf8(&self.read_buf[..line_len])
                .map_err(|_| invalid("chunk size is not UTF-8"))?;
            let size_hex = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| invalid("chunk size is not hexadecimal"))?;
            self.read_buf.drain(..line_len + 2);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let trailer_len = self.line().await?;
                    self.read_buf.drain(..trailer_len + 2);
                    if trailer_len == 0 {
                        return Ok(body);
                    }
                }
            }
            let chunk = self.take(size + 2).await?;
            body.extend_from_slice(&chunk[..size]);
        }
    }

    /// Length of the next CRLF-terminated line in `read_buf`, CRLF excluded.
    async fn line(&mut self) -> io::Result<usize> {
        loop {
            if let Some(at) = find(&self.read_buf, b"\r\n") {
                return Ok(at);
            }
            self.fill().await?;
        }
    }

    /// Removes and returns the next `length` bytes.
    async fn take(&mut self, length: usize) -> io::Result<Vec<u8>> {
        while self.read_buf.len() < length {
            self.fill().await?;
        }
        let bytes = self.read_buf[..length].to_vec();
        self.read_buf.drain(..length);
        Ok(bytes)
    }

    /// Reads more bytes; the peer closing the connection here is an error.
    async fn fill(&mut self) -> io::Result<()> {
        if self.read_more().await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-response",
            ));
        }
        Ok(())
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        self.read_buf.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.read_buf).await
    }
}

/// What the client needs from a response head.
struct Head {
    status: u16,
    framing: Framing,
    close: bool,
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Head {
    fn parse(raw: &[u8]) -> io::Result<Self> {
        let text = std::str::from_utf8(raw).map_err(|_| invalid("response head is not UTF-8"))?;
        let mut lines = text.split("\r\n");
        let mut status_line = lines.next().unwrap_or_default().split(' ');
        let version = status_line.next().unwrap_or_default();
        let status: u16 = status_line
            .next()
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid("malformed status line"))?;
        let mut close = version == "HTTP/1.0";
        let mut length = None;
        let mut chunked = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| invalid("bad content-length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                let value = value.to_ascii_lowercase();
                if value.contains("close") {
                    close = true;
                } else if value.contains("keep-alive") {
                    close = false;
                }
            }
        }
        let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
        let framing = match (bodiless, chunked, length) {
            (true, _, _) => Framing::Length(0),
            (false, true, _) => Framing::Chunked,
            (false, false, Some(length)) => Framing::Length(length),
            (false, false, None) => Framing::UntilClose,
        };
        Ok(Self {
            status,
            framing,
            close,
        })
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

// ---------------------------------------------------------------------------------------
// The API as the scenarios use it
// ---------------------------------------------------------------------------------------

/// Where and as whom the scenarios talk; cheap to clone into each connection's task.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    bearer: Arc<str>,
    /// Source of distinct user ids: the server keeps one active challenge per user.
    next_user: Arc<AtomicU64>,
}

impl Target {
    fn new(addr: SocketAddr, bearer: Arc<str>) -> Self {
        Self {
            addr,
            bearer,
            next_user: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// A created challenge and the secret that answers it.
struct Created {
    id: String,
    answer_token: String,
}

/// A `totp` challenge and the code that answers it (the factor's next step's).
struct TotpChallenge {
    id: String,
    code: String,
}

/// A `push` challenge, its device's token and the signed approval that answers it.
struct PushChallenge {
    id: String,
    device_token: String,
    body: String,
}

/// One API client over one connection, reconnecting after a failure or a server close.
/// Each call returns `Err(key)` on failure, the key naming the step and what went wrong
/// (`create 429 quota_exceeded`, `answer io ConnectionReset`, …) for the error tally.
struct Client {
    target: Target,
    conn: Option<Conn>,
}

impl Client {
    fn new(target: &Target) -> Self {
        Self {
            target: target.clone(),
            conn: None,
        }
    }

    async fn healthz(&mut self) -> Result<(), String> {
        self.call("healthz", "GET", "/healthz", false, None, 200)
            .await?;
        Ok(())
    }

    async fn create(&mut self) -> Result<Created, String> {
        let user = self.target.next_user.fetch_add(1, Ordering::Relaxed);
        let body = format!(
            r#"{{"type":"token","user_id":"u-{user}","ttl_seconds":{CHALLENGE_TTL_SECONDS}}}"#
        );
        let reply = self
            .call(
                "create",
                "POST",
                "/api/v1/challenges",
                true,
                Some(&body),
                201,
            )
            .await?;
        let reply: serde_json::Value =
            serde_json::from_slice(&reply).map_err(|_| "create: body is not JSON".to_owned())?;
        let id = reply["id"].as_str();
        let answer_token = reply["actors"][0]["answer_token"].as_str();
        match (id, answer_token) {
            (Some(id), Some(answer_token)) => Ok(Created {
                id: id.to_owned(),
                answer_token: answer_token.to_owned(),
            }),
            _ => Err("create: body lacks id or actors[0].answer_token".to_owned()),
        }
    }

    /// Approves the challenge anonymously, with its answer token as the only proof.
    async fn answer(&mut self, challenge: &Created) -> Result<(), String> {
        let path = format!("/api/v1/challenges/{}/answer", challenge.id);
        let token = serde_json::Value::from(challenge.answer_token.as_str());
        let body = format!(r#"{{"answer_token":{token},"allowed":true}}"#);
        self.call("answer", "POST", &path, false, Some(&body), 200)
            .await?;
        Ok(())
    }

    /// Enrolls and verifies a TOTP factor for a new user and creates a `totp` challenge
    /// for it; returns the challenge and the code of the step after the verification's.
    async fn totp_challenge(&mut self) -> Result<TotpChallenge, String> {
        let user = self.target.next_user.fetch_add(1, Ordering::Relaxed);
        let enroll =
            format!(r#"{{"type":"totp","period_seconds":{TOTP_PERIOD_SECONDS},"skew_steps":2}}"#);
        let path = format!("/api/v1/users/u-{user}/factors");
        let reply = self
            .call("enroll", "POST", &path, true, Some(&enroll), 201)
            .await?;
        let reply: serde_json::Value =
            serde_json::from_slice(&reply).map_err(|_| "enroll: body is not JSON".to_owned())?;
        let (Some(factor), Some(secret)) = (reply["id"].as_str(), reply["secret"].as_str()) else {
            return Err("enroll: body lacks id or secret".to_owned());
        };
        let seed = totp_rs::Secret::Encoded(secret.to_owned())
            .to_bytes()
            .map_err(|_| "enroll: secret is not base32".to_owned())?;
        let totp = totp_rs::TOTP::new_unchecked(
            totp_rs::Algorithm::SHA1,
            6,
            0,
            TOTP_PERIOD_SECONDS,
            seed,
            None,
            String::new(),
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let step = now / TOTP_PERIOD_SECONDS;
        let verify = format!(
            r#"{{"code":"{}"}}"#,
            totp.generate(step * TOTP_PERIOD_SECONDS)
        );
        self.call(
            "verify",
            "POST",
            &format!("{path}/{factor}/verify"),
            true,
            Some(&verify),
            200,
        )
        .await?;
        let create = format!(
            r#"{{"type":"totp","user_id":"u-{user}","factor_id":"{factor}","ttl_seconds":{CHALLENGE_TTL_SECONDS}}}"#
        );
        let reply = self
            .call(
                "create",
                "POST",
                "/api/v1/challenges",
                true,
                Some(&create),
                201,
            )
            .await?;
        let reply: serde_json::Value =
            serde_json::from_slice(&reply).map_err(|_| "create: body is not JSON".to_owned())?;
        let id = reply["id"]
            .as_str()
            .ok_or_else(|| "create: body lacks id".to_owned())?;
        Ok(TotpChallenge {
            id: id.to_owned(),
            code: totp.generate((step + 1) * TOTP_PERIOD_SECONDS),
        })
    }

    /// Answers a `totp` challenge with its code, as the calling service relaying it.
    async fn answer_totp(&mut self, challenge: &TotpChallenge) -> Result<(), String> {
        let path = format!("/api/v1/challenges/{}/answer", challenge.id);
        let body = format!(r#"{{"code":"{}"}}"#, challenge.code);
        self.call("totp answer", "POST", &path, true, Some(&body), 200)
            .await?;
        Ok(())
    }

    /// Enrolls and verifies a push factor (a P-256 key made here) for a new user,
    /// creates a `push` challenge for it and lists it as the device; returns the
    /// device's token and its signed approval, ready to send.
    async fn push_challenge(&mut self) -> Result<PushChallenge, String> {
        use base64::Engine as _;
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::EncodePublicKey;
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let sign_der = |text: &str| {
            let signature: p256::ecdsa::Signature = key.sign(text.as_bytes());
            b64url.encode(signature.to_der().as_bytes())
        };
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|_| "enroll: key does not encode".to_owned())?;
        let user = self.target.next_user.fetch_add(1, Ordering::Relaxed);
        let enroll = format!(
            r#"{{"type":"push","public_key":"{}","notification":{{"platform":"none"}}}}"#,
            base64::engine::general_purpose::STANDARD.encode(spki.as_bytes())
        );
        let path = format!("/api/v1/users/u-{user}/factors");
        let reply = self
            .call("enroll", "POST", &path, true, Some(&enroll), 201)
            .await?;
        let reply: serde_json::Value =
            serde_json::from_slice(&reply).map_err(|_| "enroll: body is not JSON".to_owned())?;
        let factor = reply["id"]
            .as_str()
            .ok_or_else(|| "enroll: body lacks id".to_owned())?
            .to_owned();
        let verify = format!(
            r#"{{"signature":"{}"}}"#,
            sign_der(&format!("verify.{factor}"))
        );
        self.call(
            "verify",
            "POST",
            &format!("{path}/{factor}/verify"),
            true,
            Some(&verify),
            200,
        )
        .await?;
        let create = format!(
            r#"{{"type":"push","user_id":"u-{user}","factor_id":"{factor}","details":{{"message":"Approve login?"}},"ttl_seconds":{CHALLENGE_TTL_SECONDS}}}"#
        );
        self.call(
            "create",
            "POST",
            "/api/v1/challenges",
            true,
            Some(&create),
            201,
        )
        .await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let header = b64url.encode(r#"{"alg":"ES256","typ":"JWT"}"#);
        let claims = b64url.encode(format!(r#"{{"sub":"{factor}","exp":{}}}"#, now + 295));
        let signed = format!("{header}.{claims}");
        let signature: p256::ecdsa::Signature = key.sign(signed.as_bytes());
        let device_token = format!("{signed}.{}", b64url.encode(signature.to_bytes()));
        let listed = self
            .call_as(
                "device list",
                "GET",
                "/api/v1/devices/challenges?state=issued",
                Some(&device_token),
                None,
                200,
            )
            .await?;
        let listed: serde_json::Value = serde_json::from_slice(&listed)
            .map_err(|_| "device list: body is not JSON".to_owned())?;
        // The first page holds it: the tenant has fewer challenges than a list examines.
        let open = &listed["challenges"][0];
        let (Some(id), Some(payload)) = (open["id"].as_str(), open["signing_payload"].as_str())
        else {
            return Err("device list: no open challenge".to_owned());
        };
        Ok(PushChallenge {
            id: id.to_owned(),
            device_token,
            body: format!(
                r#"{{"decision":"approved","signature":"{}"}}"#,
                sign_der(&format!("{payload}.approved"))
            ),
        })
    }

    /// Approves a `push` challenge as its device.
    async fn answer_push(&mut self, challenge: &PushChallenge) -> Result<(), String> {
        let path = format!("/api/v1/devices/challenges/{}/answer", challenge.id);
        self.call_as(
            "push answer",
            "POST",
            &path,
            Some(&challenge.device_token),
            Some(&challenge.body),
            200,
        )
        .await?;
        Ok(())
    }

    async fn get(&mut self, id: &str) -> Result<Vec<u8>, String> {
        let path = format!("/api/v1/challenges/{id}");
        self.call("get", "GET", &path, true, None, 200).await
    }

    async fn flow(&mut self) -> Result<(), String> {
        let challenge = self.create().await?;
        self.answer(&challenge).await?;
        self.get(&challenge.id).await?;
        Ok(())
    }

    /// Sends one request and returns the body if the status is `expected`.
    async fn call(
        &mut self,
        step: &str,
        method: &str,
        path: &str,
        authorized: bool,
        body: Option<&str>,
        expected: u16,
    ) -> Result<Vec<u8>, String> {
        let target = self.target.clone();
        let bearer = authorized.then_some(&*target.bearer);
        self.call_as(step, method, path, bearer, body, expected)
            .await
    }

    /// [`Client::call`] with `bearer` as the token, if any (a push device's own JWT).
    async fn call_as(
        &mut self,
        step: &str,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
        expected: u16,
    ) -> Result<Vec<u8>, String> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => match Conn::connect(self.target.addr).await {
                Ok(conn) => conn,
                Err(e) => {
                    // Do not spin on a server that refuses connections.
                    tokio::time::sleep(POLL_INTERVAL).await;
                    return Err(format!("{step} connect {:?}", e.kind()));
                }
            },
        };
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, conn.send(method, path, bearer, body));
        let response = match sent.await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(format!("{step} io {:?}", e.kind())),
            Err(_) => return Err(format!("{step} timeout")),
        };
        if conn.reusable {
            self.conn = Some(conn);
        }
        if response.status != expected {
            return Err(format!(
                "{step} {} {}",
                response.status,
                error_code(&response.body)
            ));
        }
        Ok(response.body)
    }
}

/// The stable `error.code` of an error body, if it has one.
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// What one connection saw: the latency of each success, and failures by kind.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn success(&mut self, started: Instant) {
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(micros);
    }

    fn failure(&mut self, key: String) {
        *self.errors.entry(key).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (key, count) in other.errors {
            *self.errors.entry(key).or_default() += count;
        }
    }

    fn record<T>(&mut self, started: Instant, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => {
                self.success(started);
                Some(value)
            }
            Err(key) => {
                self.failure(key);
                None
            }
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The `q` quantile in milliseconds; the latencies must be sorted.
    fn percentile_ms(&self, q: f64) -> Option<f64> {
        nearest_rank(&self.latencies_us, q).map(|us| f64::from(us) / 1000.0)
    }
}

/// The result of one scenario.
struct Outcome {
    name: &'static str,
    unit: &'static str,
    elapsed: Duration,
    tally: Tally,
    note: Option<String>,
    /// The CPU time the server spent during it.
    server_cpu: Option<Duration>,
}

/// Runs `scenario`, noting the server's CPU time it took.
async fn with_cpu(server: &ReleaseServer, scenario: impl Future<Output = Outcome>) -> Outcome {
    let before = server.cpu_time();
    let mut outcome = scenario.await;
    outcome.server_cpu = Some(server.cpu_time().saturating_sub(before));
    outcome
}

impl Outcome {
    fn new(
        name: &'static str,
        unit: &'static str,
        elapsed: Duration,
        tallies: impl IntoIterator<Item = Tally>,
    ) -> Self {
        let mut tally = Tally::default();
        for each in tallies {
            tally.merge(each);
        }
        tally.latencies_us.sort_unstable();
        Self {
            name,
            unit,
            elapsed,
            tally,
            note: None,
            server_cpu: None,
        }
    }

    fn rate(&self) -> f64 {
        self.tally.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The server's CPU time per successful request (or flow), in microseconds.
    fn cpu_us_per_request(&self) -> Option<f64> {
        let done = self.tally.latencies_us.len();
        let cpu = self.server_cpu?;
        (done > 0).then(|| cpu.as_secs_f64() * 1e6 / done as f64)
    }
}

/// Runs `work(i)` for each of `connections` connections concurrently; returns their results.
async fn on_connections<T, F, Fut>(connections: usize, work: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..connections).map(|i| tokio::spawn(work(i))).collect();
    let mut results = Vec::with_capacity(connections);
    for task in tasks {
        results.push(task.await.expect("a load task panicked"));
    }
    results
}

fn announce(name: &str, settings: &Settings) {
    eprintln!(
        "running {name} for {:.1} s on {} connections…",
        settings.duration.as_secs_f64(),
        settings.connections
    );
}

async fn healthz_scenario(target: &Target, settings: &Settings) -> Outcome {
    announce("healthz", settings);
    let started = Instant::now();
    let deadline = started + settings.duration;
    let tallies = on_connections(settings.connections, |_| {
        let mut client = Client::new(target);
        async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let result = client.healthz().await;
                tally.record(sent, result);
            }
            tally
        }
    })
    .await;
    Outcome::new("healthz", "req/s", started.elapsed(), tallies)
}

async fn create_scenario(target: &Target, settings: &Settings) -> (Outcome, Vec<Created>) {
    announce("create", settings);
    let started = Instant::now();
    let deadline = started + settings.duration;
    let results = on_connections(settings.connections, |_| {
        let mut client = Client::new(target);
        async move {
            let mut tally = Tally::default();
            let mut created = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let result = client.create().await;
                created.extend(tally.record(sent, result));
            }
            (tally, created)
        }
    })
    .await;
    let elapsed = started.elapsed();
    let mut pool = Vec::new();
    let mut tallies = Vec::with_capacity(results.len());
    for (tally, created) in results {
        tallies.push(tally);
        pool.extend(created);
    }
    (Outcome::new("create", "req/s", elapsed, tallies), pool)
}

async fn answer_scenario(
    target: &Target,
    settings: &Settings,
    pool: &Arc<Vec<Created>>,
) -> Outcome {
    announce("answer", settings);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + settings.duration;
    let tallies = on_connections(settings.connections, |_| {
        let mut client = Client::new(target);
        let pool = Arc::clone(pool);
        let next = Arc::clone(&next);
        async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let Some(challenge) = pool.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let sent = Instant::now();
                let result = client.answer(challenge).await;
                tally.record(sent, result);
            }
            tally
        }
    })
    .await;
    let mut outcome = Outcome::new("answer", "req/s", started.elapsed(), tallies);
    if next.load(Ordering::Relaxed) >= pool.len() {
        outcome.note = Some(format!(
            "all {} created challenges answered after {:.3} s",
            pool.len(),
            outcome.elapsed.as_secs_f64()
        ));
    }
    outcome
}

/// A challenge prepared, untimed, for a timed answer scenario: a `totp` one with the
/// code that answers it, or a `push` one with its device's signed decision.
trait Prepared: Send + Sync + Sized + 'static {
    /// The scenario's name in the table.
    const SCENARIO: &'static str;
    /// What is prepared, for the progress line.
    const WHAT: &'static str;
    /// The knob that sets how many are prepared.
    const KNOB: &'static str;
    fn make(client: &mut Client) -> impl Future<Output = Result<Self, String>> + Send;
    fn answer(&self, client: &mut Client) -> impl Future<Output = Result<(), String>> + Send;
}

impl Prepared for TotpChallenge {
    const SCENARIO: &'static str = "totp answer";
    const WHAT: &'static str = "TOTP factors and challenges";
    const KNOB: &'static str = "BENCH_TOTP";
    fn make(client: &mut Client) -> impl Future<Output = Result<Self, String>> + Send {
        client.totp_challenge()
    }
    fn answer(&self, client: &mut Client) -> impl Future<Output = Result<(), String>> + Send {
        client.answer_totp(self)
    }
}

impl Prepared for PushChallenge {
    const SCENARIO: &'static str = "push answer";
    const WHAT: &'static str = "push factors and challenges";
    const KNOB: &'static str = "BENCH_PUSH";
    fn make(client: &mut Client) -> impl Future<Output = Result<Self, String>> + Send {
        client.push_challenge()
    }
    fn answer(&self, client: &mut Client) -> impl Future<Output = Result<(), String>> + Send {
        client.answer_push(self)
    }
}

/// `count` challenges of a scenario, each with its own verified factor, made over the
/// scenario's connections, untimed. (Push device tokens live at most five minutes, so a
/// push preparation must not take longer than that; see `BENCH_PUSH`.)
async fn prepare<P: Prepared>(target: &Target, settings: &Settings, count: usize) -> Vec<P> {
    eprintln!("preparing {count} {}…", P::WHAT);
    let started = Instant::now();
    let claimed = Arc::new(AtomicUsize::new(0));
    let results = on_connections(settings.connections, |_| {
        let mut client = Client::new(target);
        let claimed = Arc::clone(&claimed);
        async move {
            let mut made = Vec::new();
            let mut failures = 0u32;
            while claimed.fetch_add(1, Ordering::Relaxed) < count {
                match P::make(&mut client).await {
                    Ok(challenge) => made.push(challenge),
                    Err(key) => {
                        failures += 1;
                        eprintln!("{} preparation: {key}", P::SCENARIO);
                        if failures >= MAX_CONSECUTIVE_ERRORS {
                            break;
                        }
                    }
                }
            }
            made
        }
    })
    .await;
    let pool: Vec<P> = results.into_iter().flatten().collect();
    eprintln!(
        "prepared {} in {:.1} s",
        pool.len(),
        started.elapsed().as_secs_f64()
    );
    pool
}

/// Answers the prepared challenges, each once, until the time is up or they run out.
async fn prepared_answer_scenario<P: Prepared>(
    target: &Target,
    settings: &Settings,
    pool: Vec<P>,
) -> Outcome {
    announce(P::SCENARIO, settings);
    let pool = Arc::new(pool);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + settings.duration;
    let tallies = on_connections(settings.connections, |_| {
        let mut client = Client::new(target);
        let pool = Arc::clone(&pool);
        let next = Arc::clone(&next);
        async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let Some(challenge) = pool.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let sent = Instant::now();
                let result = challenge.answer(&mut client).await;
                tally.record(sent, result);
            }
            tally
        }
    })
    .await;
    let mut outcome = Outcome::new(P::SCENARIO, "req/s", started.elapsed(), tallies);
    if next.load(Ordering::Relaxed) >= pool.len() {
        outcome.note = Some(format!(
            "all {} prepared challenges answered after {:.3} s (raise {} for a longer run)",
            pool.len(),
            outcome.elapsed.as_secs_f64(),
            P::KNOB
        ));
    }
    outcome
}

async fn get_scenario(target: &Target, settings: &Settings, pool: &Arc<Vec<Created>>) -> Outcome {
    if pool.is_empty() {
        let mut outcome = Outcome::new("get", "req/s", settings.duration, []);
        outcome.note = Some("skipped: no challenge was created".to_owned());
        return outcome;
    }
    announce("get", settings);
    let started = Instant::now();
    let deadline = started + settings.duration;
    let tallies = on_connections(settings.connections, |i| {
        let mut client = Client::new(target);
        let pool = Arc::clone(pool);
        async move {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let challenge = &pool[rng.gen_range(0..pool.len())];
                let sent = Instant::now();
                let result = client.get(&challenge.id).await;
                tally.record(sent, result);
            }
            tally
        }
    })
    .await;
    Outcome::new("get", "req/s", started.elapsed(), tallies)
}

async fn flow_scenario(target: &Target, settings: &Settings) -> Outcome {
    announce("flow", settings);
    let started = Instant::now();
    let deadline = started + settings.duration;
    let tallies = on_connections(settings.connections, |_| {
        let mut client = Client::new(target);
        async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let begun = Instant::now();
                let result = client.flow().await;
                tally.record(begun, result);
            }
            tally
        }
    })
    .await;
    let mut outcome = Outcome::new("flow", "flows/s", started.elapsed(), tallies);
    outcome.note = Some("one flow = create → answer → get on one connection".to_owned());
    outcome
}

fn print_scenarios(settings: &Settings, outcomes: &[Outcome]) {
    let by_name = |name: &str| outcomes.iter().find(|outcome| outcome.name == name);
    let ceiling = by_name("healthz").map_or(f64::NAN, Outcome::rate);
    println!();
    println!(
        "## Load: {} keep-alive connections, {:.1} s per scenario, client on {CLIENT_THREADS} threads",
        settings.connections,
        settings.duration.as_secs_f64()
    );
    println!();
    println!(
        "| scenario | rate | unit | p50 ms | p99 ms | p99.9 ms | errors | of healthz rate | server CPU µs each |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for outcome in outcomes {
        let tally = &outcome.tally;
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {:.1} % | {} |",
            outcome.name,
            outcome.rate(),
            outcome.unit,
            ms(tally.percentile_ms(0.50)),
            ms(tally.percentile_ms(0.99)),
            ms(tally.percentile_ms(0.999)),
            tally.error_count(),
            100.0 * outcome.rate() / ceiling,
            outcome
                .cpu_us_per_request()
                .map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"))
        );
    }
    println!();
    let p99 = |name: &str| by_name(name).and_then(|outcome| outcome.tally.percentile_ms(0.99));
    if let (Some(answer), Some(healthz)) = (p99("answer"), p99("healthz")) {
        println!("- answer p99 / healthz p99: {:.2}x", answer / healthz);
    }
    for outcome in outcomes {
        if let Some(note) = &outcome.note {
            println!("- {}: {note}", outcome.name);
        }
        for (key, count) in &outcome.tally.errors {
            println!("- {} error: {count} × `{key}`", outcome.name);
        }
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.3}"))
}

// ---------------------------------------------------------------------------------------
// Memory per live challenge, and restore after a restart
// ---------------------------------------------------------------------------------------

/// The result of creating a batch of live challenges.
struct Fill {
    tally: Tally,
    elapsed: Duration,
    sample_id: Option<String>,
}

/// Creates `count` challenges over `MEMORY_CONNECTIONS` connections as fast as the server
/// takes them (fewer if creates fail).
async fn fill_live(target: &Target, count: usize) -> Fill {
    let claimed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let results = on_connections(MEMORY_CONNECTIONS, |_| {
        let mut client = Client::new(target);
        let claimed = Arc::clone(&claimed);
        async move {
            let mut tally = Tally::default();
            let mut sample_id = None;
            let mut failures_in_a_row = 0;
            while claimed.fetch_add(1, Ordering::Relaxed) < count {
                let sent = Instant::now();
                let result = client.create().await;
                match tally.record(sent, result) {
                    Some(created) => {
                        failures_in_a_row = 0;
                        sample_id.get_or_insert(created.id);
                    }
                    None => {
                        failures_in_a_row += 1;
                        if failures_in_a_row >= MAX_CONSECUTIVE_ERRORS {
                            break;
                        }
                    }
                }
            }
            (tally, sample_id)
        }
    })
    .await;
    let elapsed = started.elapsed();
    let mut tally = Tally::default();
    let mut sample_id = None;
    for (each, id) in results {
        tally.merge(each);
        sample_id = sample_id.or(id);
    }
    tally.latencies_us.sort_unstable();
    Fill {
        tally,
        elapsed,
        sample_id,
    }
}

async fn memory_and_restore(settings: &Settings, bearer: Arc<str>) {
    let data_dir = DataDir::create("memory");
    let addr = free_local_addr();
    let mut server = ReleaseServer::spawn(data_dir.path(), addr, &server_env());
    server.wait_ready(READY_TIMEOUT).await;
    let target = Target::new(addr, bearer);
    let base_rss = server.rss_bytes();

    println!();
    println!(
        "## Memory: fresh server, type token, ttl {CHALLENGE_TTL_SECONDS} s, created over {MEMORY_CONNECTIONS} connections"
    );
    println!();
    println!("| live challenges | server RSS MiB | bytes per live challenge | creates/s in step | create p99 ms |");
    println!("|---:|---:|---:|---:|---:|");
    println!("| 0 | {:.1} | - | - | - |", mib(base_rss));

    let mut live = 0;
    let mut creating = Duration::ZERO;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut sample_id = None;
    let mut goals = vec![MEMORY_CHECKPOINT.min(settings.live), settings.live];
    goals.dedup();
    for goal in goals {
        if goal <= live {
            continue;
        }
        eprintln!("creating live challenges up to {goal}…");
        let wanted = goal - live;
        let fill = fill_live(&target, wanted).await;
        let created = fill.tally.latencies_us.len();
        live += created;
        creating += fill.elapsed;
        let rss = server.rss_bytes();
        println!(
            "| {live} | {:.1} | {:.0} | {:.0} | {} |",
            mib(rss),
            rss.saturating_sub(base_rss) as f64 / live.max(1) as f64,
            created as f64 / fill.elapsed.as_secs_f64(),
            ms(fill.tally.percentile_ms(0.99))
        );
        sample_id = sample_id.or(fill.sample_id);
        for (key, count) in fill.tally.errors {
            *errors.entry(key).or_insert(0) += count;
        }
        if created < wanted {
            // Creates are failing; the errors below say why.
            break;
        }
    }
    println!();
    println!(
        "- {live} live challenges created in {:.3} s: {:.0} creates/s",
        creating.as_secs_f64(),
        live as f64 / creating.as_secs_f64()
    );
    for (key, count) in &errors {
        println!("- create error: {count} × `{key}`");
    }

    eprintln!("restarting the server on the same data directory…");
    let (shutdown, status) = server.terminate().await;
    drop(server);
    let exit = status.map_or_else(|| "killed after the timeout".to_owned(), |s| s.to_string());
    println!(
        "- shutdown on SIGTERM: {:.3} s ({exit})",
        shutdown.as_secs_f64()
    );

    let mut server = ReleaseServer::spawn(data_dir.path(), addr, &server_env());
    let restore = server.wait_ready(RESTORE_TIMEOUT).await;
    println!(
        "- restore of {live} live challenges: {:.3} s (spawn → /readyz 200), RSS after {:.1} MiB",
        restore.as_secs_f64(),
        mib(server.rss_bytes())
    );

    match sample_id {
        Some(id) => {
            let mut client = Client::new(&target);
            let state = match client.get(&id).await {
                Ok(body) => serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|value| value["state"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "no state in the body".to_owned()),
                Err(key) => key,
            };
            let verdict = if state == "issued" { "ok" } else { "not ok" };
            println!("- `{id}` after restore: {state}: {verdict}");
        }
        None => println!("- after restore: no challenge to check: not ok"),
    }
    server.terminate().await;
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

// ---------------------------------------------------------------------------------------
// Group-commit statistics from /metrics
// ---------------------------------------------------------------------------------------

/// Cumulative flush count, flush time and writers served, as the server exports them.
#[derive(Default)]
struct FlushStats {
    count: f64,
    seconds: f64,
    writers: f64,
}

impl FlushStats {
    fn since(&self, earlier: &FlushStats) -> FlushStats {
        FlushStats {
            count: self.count - earlier.count,
            seconds: self.seconds - earlier.seconds,
            writers: self.writers - earlier.writers,
        }
    }
}

async fn flush_stats(target: &Target) -> FlushStats {
    let mut client = Client::new(target);
    let Ok(body) = client
        .call("metrics", "GET", "/metrics", false, None, 200)
        .await
    else {
        return FlushStats::default();
    };
    let text = String::from_utf8_lossy(&body);
    let value = |name: &str| {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    FlushStats {
        count: value("snapshot_flush_duration_seconds_count"),
        seconds: value("snapshot_flush_duration_seconds_sum"),
        writers: value("snapshot_flush_batch_size_sum"),
    }
}
