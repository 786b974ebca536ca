//! Shared test setup: a server on 127.0.0.1:0 over a fresh sled directory — in-process
//! (its own actix System on a thread) or as the real binary in a child process — and
//! bearer tokens signed with the configured development key.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use challenge_server::auth::mint::mint;
use challenge_server::config::Settings;
use challenge_server::server::Application;
use challenge_server::store::SnapshotStore;
use serde_json::{json, Value};

pub const ALL_SCOPES: &str = "challenge:post challenge:get challenge:delete challenge:answer \
     challenge:resend challenge:complete";

/// Tenant `acme`'s token with every challenge scope.
pub fn token(settings: &Settings, tenant: &str, scopes: &str) -> String {
    mint(&settings.auth, tenant, scopes, 600, "test").expect("mint a token")
}

pub struct TestServer {
    pub base: String,
    /// The separate `/metrics` listener's origin, when `metrics.listen` configures one.
    pub metrics_base: Option<String>,
    pub settings: Settings,
    pub http: reqwest::Client,
    pub data: tempfile::TempDir,
    handle: Option<ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts with the development settings changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Settings)) -> TestServer {
        Self::start_on_port(|settings, _| tweak(settings)).await
    }

    /// Starts with the settings changed by `tweak`, which is told the port the server
    /// will listen on (for settings that name the server's own origin).
    pub async fn start_on_port(tweak: impl FnOnce(&mut Settings, u16)) -> TestServer {
        let data = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::development();
        settings.storage.data_dir = data.path().to_path_buf();
        settings.server.workers = 2;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        tweak(&mut settings, listener.local_addr().unwrap().port());
        let (handle, thread, port, metrics_port) = spawn(settings.clone(), listener);
        let server = TestServer {
            base: format!("http://127.0.0.1:{port}"),
            metrics_base: metrics_port.map(|p| format!("http://127.0.0.1:{p}")),
            settings,
            http: reqwest::Client::new(),
            data,
            handle: Some(handle),
            thread: Some(thread),
        };
        let ready = server.url("/readyz");
        eventually(Duration::from_secs(30), || async {
            let r = server.http.get(&ready).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        server
    }

    pub fn token(&self, tenant: &str, scopes: &str) -> String {
        token(&self.settings, tenant, scopes)
    }

    /// acme, every scope.
    pub fn admin(&self) -> String {
        self.token("acme", ALL_SCOPES)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn create(&self, token: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/api/v1/challenges"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("create request")
    }

    /// Creates a token challenge and returns the create response body.
    pub async fn create_ok(&self, body: Value) -> Value {
        let response = self.create(&self.admin(), body).await;
        assert_eq!(response.status(), 201, "create failed");
        response.json().await.unwrap()
    }

    pub async fn get(&self, token: &str, id: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/api/v1/challenges/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("get request")
    }

    pub async fn state_of(&self, id: &str) -> Value {
        let response = self.get(&self.admin(), id).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Anonymous answer with an answer token.
    pub async fn answer_anonymously(
        &self,
        id: &str,
        answer_token: &str,
        allowed: bool,
    ) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/api/v1/challenges/{id}/answer")))
            .json(&json!({"answer_token": answer_token, "allowed": allowed}))
            .send()
            .await
            .expect("answer request")
    }

    pub async fn post(&self, token: Option<&str>, path: &str, body: Value) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.expect("post request")
    }

    /// Stops the server gracefully (as on SIGTERM) and waits for its final flush.
    pub async fn stop(mut self) -> (Settings, tempfile::TempDir) {
        if let Some(handle) = self.handle.take() {
            handle.stop(true).await;
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join().unwrap())
                .await
                .unwrap();
        }
        let data = std::mem::replace(&mut self.data, tempfile::tempdir().unwrap());
        // The server's last actors are dropped by their own threads after it stops, and
        // they hold the store: wait until the data directory is free to open again.
        let dir = data.path().to_path_buf();
        eventually(Duration::from_secs(10), || {
            let dir = dir.clone();
            async move { SnapshotStore::open(&dir, 1 << 20).ok().map(drop) }
        })
        .await;
        (self.settings.clone(), data)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            drop(handle.stop(false));
        }
    }
}

fn spawn(
    settings: Settings,
    listener: TcpListener,
) -> (ServerHandle, std::thread::JoinHandle<()>, u16, Option<u16>) {
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(settings, listener)
                .await
                .expect("server builds");
            tx.send((app.handle(), app.metrics_port())).unwrap();
            app.run().await.expect("server runs");
        });
    });
    let (handle, metrics_port) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server started");
    (handle, thread, port, metrics_port)
}

/// The body's `error.code`.
pub async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    (
        status,
        body["error"]["code"]
            .as_str()
            .expect("error.code")
            .to_string(),
    )
}

/// Polls `check` every 10 ms until it returns Some, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The real binary as a child process, on a given data dir.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
    pub stderr_log: PathBuf,
}

impl ServerProcess {
    /// Starts the binary and waits until it is ready.
    pub async fn start(
        data_dir: &Path,
        log_dir: &Path,
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        let process = Self::spawn(data_dir, log_dir, extra_env);
        let http = reqwest::Client::new();
        let ready = process.url("/readyz");
        eventually(Duration::from_secs(30), || {
            let http = http.clone();
            let ready = ready.clone();
            async move {
                match http.get(&ready).send().await {
                    Ok(r) if r.status() == 200 => Some(()),
                    _ => None,
                }
            }
        })
        .await;
        process
    }

    /// Starts the binary without waiting for anything.
    pub fn spawn(data_dir: &Path, log_dir: &Path, extra_env: &[(&str, &str)]) -> ServerProcess {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let stderr_log = log_dir.join(format!("server-{port}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_challenge-server"));
        command
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .env("CHALLENGE_SERVER__LOG__LEVEL", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_log).unwrap());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start the server binary");
        ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stderr_log,
        }
    }

    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the server binary with `args` and `env` and waits (up to `limit`) for it to exit
/// by itself: its exit code (`None` if a signal ended it) and its standard error. Panics
/// if it is still running at `limit` (after killing it).
pub async fn run_binary_to_exit(
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (Option<i32>, String) {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stderr.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_challenge-server"));
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start the server binary");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the server binary") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not exit within {limit:?}; stderr:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

/// A free port on 127.0.0.1 (bound and released: the caller binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `GET base/readyz` answers 200.
pub async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
    let ready = format!("{base}/readyz");
    eventually(Duration::from_secs(30), || {
        let request = http.get(&ready).send();
        async move { matches!(request.await, Ok(r) if r.status() == 200).then_some(()) }
    })
    .await;
}
