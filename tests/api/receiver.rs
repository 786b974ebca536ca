//! A real HTTP server on 127.0.0.1 that records every request it receives and answers
//! as a test scripts it (status and delay, per path and per arrival) — the receiving end
//! of one-time-use actions.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::helpers::eventually;

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Given a request and how many earlier requests had the same path: (status, delay).
pub type Script = Arc<dyn Fn(&Received, usize) -> (u16, Duration) + Send + Sync>;

pub fn always(status: u16) -> Script {
    Arc::new(move |_, _| (status, Duration::ZERO))
}

pub struct Receiver {
    pub base: String,
    log: Arc<Mutex<Vec<Received>>>,
    handle: ServerHandle,
}

struct Shared {
    log: Arc<Mutex<Vec<Received>>>,
    script: Script,
}

async fn record(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let received = Received {
        method: req.method().to_string(),
        path: req.path().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).to_string(),
    };
    let earlier = {
        let mut log = shared.log.lock().unwrap();
        let earlier = log.iter().filter(|r| r.path == received.path).count();
        log.push(received.clone());
        earlier
    };
    let (status, delay) = (shared.script)(&received, earlier);
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if (300..400).contains(&status) {
        response.insert_header(("Location", "/redirected"));
    }
    response.body("{\"ok\":true}")
}

impl Receiver {
    pub fn start(script: Script) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = web::Data::new(Shared {
            log: log.clone(),
            script,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .default_service(web::to(record))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            })
        });
        Receiver {
            base: format!("http://127.0.0.1:{port}"),
            log,
            handle: rx.recv().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived, and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(Duration::from_secs(30), || async {
            let seen = self.requests();
            (seen.len() >= n).then_some(seen)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
