//! Real receivers for outbound deliveries, on 127.0.0.1 only: an SMTP server (Python's
//! aiosmtpd, `tests/support/smtp_sink.py`, as a child process) that keeps every message
//! it accepts, and an HTTP server (actix-web on its own thread and System) that records
//! every request and answers from a script.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;

use crate::helpers::eventually;

/// aiosmtpd on a free port, writing what it receives into a temp dir. Killed on drop.
pub struct SmtpSink {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

/// One accepted message, as Python's email package decoded it.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Of the whole message, e.g. `multipart/alternative`.
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    /// The leaf parts, decoded (quoted-printable, base64, charsets).
    pub parts: Vec<MailPart>,
    /// The raw RFC 5322 text as it arrived.
    #[serde(skip)]
    pub raw: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MailPart {
    pub content_type: String,
    pub body: String,
}

impl ReceivedMail {
    /// The first header of that name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn part(&self, content_type: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.content_type == content_type)
            .map(|p| p.body.as_str())
    }
}

impl SmtpSink {
    /// Starts the sink and returns once it listens (it prints `ready <port>`).
    pub async fn start() -> SmtpSink {
        Self::start_on(0).await
    }

    /// Starts the sink on `port` (0: any free one).
    pub async fn start_on(port: u16) -> SmtpSink {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (the SMTP sink needs it)");
        let stdout = child.stdout.take().expect("piped stdout");
        let line = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line).map(|_| line)
            }),
        )
        .await
        .expect("the SMTP sink starts within 30 s")
        .expect("reader thread")
        .expect("read the sink's stdout");
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "the SMTP sink did not start (is aiosmtpd installed? \
                     `python3 -m pip install aiosmtpd`); it printed {line:?}"
                )
            });
        SmtpSink { port, child, dir }
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut numbered: Vec<(u32, PathBuf)> = std::fs::read_dir(self.dir.path())
            .expect("read the sink dir")
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let stem = path.file_name()?.to_str()?.strip_suffix(".json")?;
                Some((stem.parse().ok()?, path))
            })
            .collect();
        numbered.sort();
        numbered
            .into_iter()
            .map(|(_, path)| {
                let mut mail: ReceivedMail =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                mail.raw = std::fs::read_to_string(path.with_extension("eml")).unwrap();
                mail
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<ReceivedMail> {
        eventually(Duration::from_secs(10), || async {
            let messages = self.messages();
            (messages.len() >= n).then_some(messages)
        })
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One request the HTTP sink received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            location: None,
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }
    pub fn location(mut self, url: &str) -> Reply {
        self.location = Some(url.to_string());
        self
    }
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Given a request and how many earlier requests had the same path: the reply.
pub type Script = Arc<dyn Fn(&RecordedRequest, usize) -> Reply + Send + Sync>;

/// A script that always answers `status`.
pub fn always(status: u16) -> Script {
    Arc::new(move |_, _| Reply::status(status))
}

#[derive(Default)]
struct Recorder {
    requests: Mutex<Vec<RecordedRequest>>,
    script: Mutex<VecDeque<Reply>>,
    /// Answers once the queued replies run out (default: 200).
    responder: Option<Script>,
}

/// An HTTP server that records every request and answers with the queued replies in
/// order, then from its script (per path and arrival), or 200. Stopped on drop. It is
/// every local receiver the tests need: SMS gateways, webhook and action targets.
pub struct HttpSink {
    pub base: String,
    recorder: Arc<Recorder>,
    handle: ServerHandle,
}

impl HttpSink {
    pub fn start() -> HttpSink {
        Self::start_with(None)
    }

    /// A sink that answers every request from `script`.
    pub fn scripted(script: Script) -> HttpSink {
        Self::start_with(Some(script))
    }

    fn start_with(responder: Option<Script>) -> HttpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let recorder = Arc::new(Recorder {
            responder,
            ..Recorder::default()
        });
        let shared = web::Data::from(recorder.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .app_data(web::PayloadConfig::new(1 << 20))
                        .default_service(web::to(record))
                })
                .workers(1)
                .listen(listener)
                .expect("listen")
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        let handle = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("HTTP sink started");
        HttpSink {
            base,
            recorder,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Queues replies for the next requests.
    pub fn reply_with(&self, replies: impl IntoIterator<Item = Reply>) {
        self.recorder.script.lock().unwrap().extend(replies);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorder.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived, and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<RecordedRequest> {
        eventually(Duration::from_secs(30), || async {
            let seen = self.requests();
            (seen.len() >= n).then_some(seen)
        })
        .await
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn record(
    request: HttpRequest,
    body: web::Bytes,
    recorder: web::Data<Recorder>,
) -> HttpResponse {
    let received = RecordedRequest {
        method: request.method().to_string(),
        path: request.uri().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let earlier = {
        let mut requests = recorder.requests.lock().unwrap();
        let earlier = requests.iter().filter(|r| r.path == received.path).count();
        requests.push(received.clone());
        earlier
    };
    let queued = recorder.script.lock().unwrap().pop_front();
    let reply = queued.unwrap_or_else(|| match &recorder.responder {
        Some(script) => script(&received, earlier),
        None => Reply::status(200),
    });
    if !reply.delay.is_zero() {
        actix_web::rt::time::sleep(reply.delay).await;
    }
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(reply.status).expect("a valid status"),
    );
    if let Some(location) = &reply.location {
        response.insert_header(("Location", location.as_str()));
    }
    response.content_type("application/json").body(reply.body)
}
