//! `pending`: a challenge created with `"issue": false` takes no answer and delivers
//! nothing until `POST /api/v1/challenges/{id}/issue`; it cancels, expires and survives
//! a restart like an issued one.

use std::time::Duration;

use challenge_server::config::SmtpTls;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sinks::SmtpSink;

async fn issue(server: &TestServer, token: &str, id: &str) -> reqwest::Response {
    server
        .post(
            Some(token),
            &format!("/api/v1/challenges/{id}/issue"),
            json!({}),
        )
        .await
}

#[tokio::test]
async fn a_pending_challenge_takes_no_answer_until_it_is_issued() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "issue": false}))
        .await;
    assert_eq!(created["state"], "pending");
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();

    let anonymous = server.answer_anonymously(id, token, true).await;
    assert_eq!(error_code(anonymous).await, (400, "answer_rejected".into()));
    let relayed = server
        .post(
            Some(&server.token("acme", "challenge:answer")),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"answer_token": token}),
        )
        .await;
    assert_eq!(error_code(relayed).await, (409, "not_issued".into()));
    assert_eq!(server.state_of(id).await["state"], "pending");

    let forbidden = issue(&server, &server.token("acme", "challenge:get"), id).await;
    assert_eq!(error_code(forbidden).await, (403, "forbidden".into()));
    let other = issue(&server, &server.token("other", "challenge:post"), id).await;
    assert_eq!(error_code(other).await, (404, "challenge_not_found".into()));

    let issued = issue(&server, &server.admin(), id).await;
    assert_eq!(issued.status(), 200);
    let issued: Value = issued.json().await.unwrap();
    assert_eq!(issued["state"], "issued");
    let again = issue(&server, &server.admin(), id).await;
    assert_eq!(error_code(again).await, (409, "not_pending".into()));

    let answered = server.answer_anonymously(id, token, true).await;
    assert_eq!(answered.status(), 200);
    assert_eq!(server.state_of(id).await["state"], "verified");
}

#[tokio::test]
async fn a_pending_challenge_cancels_and_expires() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "issue": false}))
        .await;
    let id = created["id"].as_str().unwrap();
    let cancel = server
        .http
        .delete(server.url(&format!("/api/v1/challenges/{id}")))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    assert_eq!(server.state_of(id).await["state"], "cancelled");

    let short = server
        .create_ok(json!({"type": "token", "user_id": "u-2", "issue": false, "ttl_seconds": 1}))
        .await;
    let id = short["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(10), || async {
        (server.state_of(&id).await["state"] == "expired").then_some(())
    })
    .await;
    let late = issue(&server, &server.admin(), &id).await;
    assert_eq!(error_code(late).await, (409, "not_pending".into()));
}

#[tokio::test]
async fn a_pending_challenge_survives_a_restart() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "issue": false}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let token = created["actors"][0]["answer_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (settings, data) = server.stop().await;
    let restarted = TestServer::start_with(|s| {
        *s = settings;
        s.storage.data_dir = data.path().to_path_buf();
    })
    .await;
    assert_eq!(restarted.state_of(&id).await["state"], "pending");
    assert_eq!(
        issue(&restarted, &restarted.admin(), &id).await.status(),
        200
    );
    let answered = restarted.answer_anonymously(&id, &token, true).await;
    assert_eq!(answered.status(), 200);
}

#[tokio::test]
async fn a_pending_delivery_challenge_is_sent_when_issued() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| {
        s.email.smtp_host = "127.0.0.1".into();
        s.email.smtp_port = sink.port;
        s.email.tls = SmtpTls::None;
        s.delivery.backoff_ms = 10;
    })
    .await;
    let created = server
        .create_ok(json!({"type": "email_otp", "user_id": "u-1",
            "recipient": {"email": "alice@example.com"}, "issue": false}))
        .await;
    assert_eq!(created["state"], "pending");
    assert_eq!(created["delivery"][0]["status"], "not_sent");
    let id = created["id"].as_str().unwrap();
    // `send: true` contradicts `issue: false`.
    let contradictory = server
        .create(
            &server.admin(),
            json!({"type": "email_otp", "user_id": "u-1",
                "recipient": {"email": "alice@example.com"}, "issue": false, "send": true}),
        )
        .await;
    assert_eq!(
        error_code(contradictory).await,
        (400, "invalid_field".into())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.messages().is_empty(), "nothing is sent while pending");

    assert_eq!(issue(&server, &server.admin(), id).await.status(), 200);
    let mail = sink.wait_for(1).await.remove(0);
    let text = mail.part("text/plain").unwrap();
    let code: String = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .expect("a code")
        .to_string();
    let answered = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(answered.status(), 200);
}
