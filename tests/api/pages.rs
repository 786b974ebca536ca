//! The answer page in a real browser (Debian's chromium driven by playwright-core):
//! a person opens the link, sees what is asked, clicks, and the challenge is answered —
//! once.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::sinks::{always, HttpSink};

/// Runs tests/support/answer_page.mjs and returns what it saw.
async fn browse(url: &str, args: &[&str]) -> Value {
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
    let output = tokio::process::Command::new("node")
        .arg(support.join("answer_page.mjs"))
        .arg(url)
        .args(args)
        .current_dir(&support)
        .output()
        .await
        .expect("node runs (tests need Node.js, chromium and `npm ci` in tests/support; .ci/run installs them)");
    assert!(
        output.status.success(),
        "browser script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

#[tokio::test]
async fn a_person_approves_in_the_browser_and_a_second_submit_fails_cleanly() {
    let server = TestServer::start_with(|s| s.actions.allow_private = true).await;
    let receiver = HttpSink::scripted(always(200));
    let created = server
        .create_ok(json!({"type": "one_time_use_action", "user_id": "u-123",
            "details": {"message": "Unlock the account of <u-123>?", "fields": [{"label": "Requested by", "value": "help desk"}]},
            "actions": {"approved": [{"method": "POST", "uri": receiver.url("/users/u-123/unlock")}],
                        "declined": [{"method": "POST", "uri": receiver.url("/users/u-123/notes")}]}}))
        .await;
    let id = created["id"].as_str().unwrap();
    let url = created["actors"][0]["answer_url"]
        .as_str()
        .unwrap()
        .replace("http://127.0.0.1:8080", &server.base);
    assert!(url.contains(&format!("/c/{id}?t=")));

    let seen = browse(&url, &["Approve", "--again"]).await;
    assert_eq!(seen["get_status"], 200);
    let text = seen["text"].as_str().unwrap();
    assert!(text.contains("Unlock the account of <u-123>?"), "{text}");
    assert!(text.contains("help desk"));
    assert!(
        text.contains("POST 127.0.0.1/users/u-123/unlock"),
        "the page shows what approving does: {text}"
    );
    assert_eq!(seen["buttons"], json!(["Approve", "Decline"]));
    assert!(seen["csp"]
        .as_str()
        .unwrap()
        .starts_with("default-src 'none'"));
    assert_eq!(seen["console"], json!([]), "the page broke its own CSP");
    assert_eq!(seen["post_status"], 200);
    assert!(seen["after"].as_str().unwrap().starts_with("Approved"));
    assert_eq!(seen["again_status"], 409);
    assert!(seen["again_text"]
        .as_str()
        .unwrap()
        .contains("already approved"));
    assert_eq!(seen["reopen_status"], 409);

    let state = server.state_of(id).await;
    assert_eq!(state["state"], "verified");
    assert_eq!(state["answered_by"]["user_id"], "u-123");
    let ran = eventually(Duration::from_secs(30), || async {
        let c = server.state_of(id).await;
        (c["actions"]["results"][0]["status"] == "succeeded").then_some(c)
    })
    .await;
    assert_eq!(ran["actions"]["chosen"], "approved");
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn a_decline_in_the_browser_declines() {
    let server = TestServer::start().await;
    let created = server.create_ok(json!({"type": "token", "user_id": "u-1", "details": {"message": "Sign in from Ottawa?"}})).await;
    let id = created["id"].as_str().unwrap();
    let url = created["actors"][0]["answer_url"]
        .as_str()
        .unwrap()
        .replace("http://127.0.0.1:8080", &server.base);
    let seen = browse(&url, &["Decline"]).await;
    assert!(seen["text"]
        .as_str()
        .unwrap()
        .contains("Sign in from Ottawa?"));
    assert_eq!(seen["post_status"], 200);
    assert!(seen["after"].as_str().unwrap().starts_with("Declined"));
    assert_eq!(server.state_of(id).await["state"], "declined");
}

#[tokio::test]
async fn opening_a_link_never_answers_and_bad_links_get_readable_pages() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    let link = server.url(&format!("/c/{id}?t={token}"));
    // Mail scanners fetch links, sometimes many times: nothing changes.
    for _ in 0..3 {
        let r = server.http.get(&link).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    assert_eq!(server.state_of(id).await["state"], "issued");

    for (url, status) in [
        (server.url(&format!("/c/{id}?t={}", "x".repeat(43))), 404),
        (server.url(&format!("/c/{id}")), 404),
        (
            server.url(&format!("/c/ch_AAAAAAAAAAAAAAAAAAAAAA?t={token}")),
            404,
        ),
        (server.url("/c/nonsense?t=abc"), 404),
    ] {
        let r = server.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), status, "{url}");
        assert!(r.text().await.unwrap().contains("This link is not valid"));
    }
    let forged = server
        .http
        .post(server.url(&format!("/c/{id}")))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("t={}&allowed=true", "y".repeat(43)))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);
    let odd = server
        .http
        .post(server.url(&format!("/c/{id}")))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("t={token}&allowed=maybe"))
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), 404);
    assert_eq!(server.state_of(id).await["state"], "issued");
}

#[tokio::test]
async fn a_magic_link_from_a_real_email_approves_in_the_browser_once() {
    let sink = crate::sinks::SmtpSink::start().await;
    let server = TestServer::start_with(|s| {
        s.email.smtp_host = "127.0.0.1".into();
        s.email.smtp_port = sink.port;
        s.email.tls = challenge_server::config::SmtpTls::None;
    })
    .await;
    let created = server
        .create_ok(json!({"type": "email_link", "user_id": "u-1", "recipient": {"email": "alice@example.com"},
            "details": {"message": "Sign in from Ottawa?"}}))
        .await;
    let id = created["id"].as_str().unwrap();
    assert!(created["actors"][0].get("answer_token").is_none());
    let mail = sink.wait_for(1).await.remove(0);
    let text = mail.part("text/plain").unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:8080/c/"))
        .unwrap_or_else(|| panic!("no link in {text}"));
    let token = link.rsplit("?t=").next().unwrap();
    let html = mail.part("text/html").unwrap();
    assert!(
        html.contains(id) && html.contains(token),
        "the HTML part carries the same link"
    );
    let link = link.replace("http://127.0.0.1:8080", &server.base);
    // A scanner fetching the link changes nothing.
    assert_eq!(server.http.get(&link).send().await.unwrap().status(), 200);
    assert_eq!(server.state_of(id).await["state"], "issued");

    let seen = browse(&link, &["Approve", "--again"]).await;
    assert!(seen["text"]
        .as_str()
        .unwrap()
        .contains("Sign in from Ottawa?"));
    assert_eq!(seen["post_status"], 200);
    assert_eq!(seen["again_status"], 409);
    assert_eq!(seen["reopen_status"], 409);
    let state = server.state_of(id).await;
    assert_eq!(state["state"], "verified");
    assert_eq!(state["answered_by"]["user_id"], "u-1");
}
