//! Bounded resources: slow clients are cut off, and the answer page takes no larger a
//! body than the API.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Reads what the server sends until it closes the connection (or `limit` passes).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open past {limit:?}"
    );
    String::from_utf8_lossy(&seen).into_owned()
}

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_cut_off() {
    // The HTTP stack reckons the deadline from a clock it refreshes every 500 ms, so the
    // cut may come up to that much early: the timeout is long enough to tell either way.
    let server = TestServer::start_with(|s| s.server.request_head_timeout_ms = 1500).await;
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let seen = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "cut off before the timeout: {:?} {seen:?}",
        started.elapsed()
    );
    assert!(
        seen.is_empty() || seen.starts_with("HTTP/1.1 408"),
        "{seen}"
    );
    // The server still serves others.
    let ok = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused_and_changes_nothing() {
    let server = TestServer::start_with(|s| s.server.body_read_timeout_ms = 300).await;
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    let head = format!(
        "POST /api/v1/challenges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\":",
        server.admin()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let seen = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    assert!(seen.contains("\"request_timeout\""), "{seen}");
    let list: Value = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["challenges"], json!([]));
}

#[tokio::test]
async fn the_answer_page_takes_no_larger_a_body_than_the_api() {
    let server = TestServer::start_with(|s| s.server.body_limit_bytes = 1024).await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    let post = |body: String| {
        server
            .http
            .post(server.url(&format!("/c/{id}")))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let padded = format!("t={token}&allowed=true&pad={}", "x".repeat(2000));
    let refused = post(padded).await.unwrap();
    assert_eq!(refused.status(), 413);
    assert!(refused.text().await.unwrap().contains("could not be read"));
    assert_eq!(server.state_of(id).await["state"], "issued");
    let answered = post(format!("t={token}&allowed=true")).await.unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(server.state_of(id).await["state"], "verified");
}
