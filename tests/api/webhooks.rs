//! Status webhooks go through a durable outbox: one that was not delivered when the
//! server died is sent again after the restart, with the same event id and body; one
//! that keeps failing is dead-lettered after its last attempt, and counted.

use std::time::Duration;

use challenge_server::config::Settings;
use challenge_server::delivery::webhook;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sinks::{always, HttpSink, Reply};

/// The value of an unlabelled metric, once `/metrics` shows it.
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_webhook_held_by_a_slow_receiver_when_the_server_dies_is_sent_again_with_its_event_id() {
    let hook = HttpSink::start();
    // The first delivery is held far longer than the test runs; later ones answer.
    hook.reply_with([Reply::status(200).after(Duration::from_secs(120))]);
    let (data, logs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = [
        ("CHALLENGE_SERVER__ACTIONS__ALLOW_PRIVATE", "true"),
        ("CHALLENGE_SERVER__WEBHOOKS__TIMEOUT_MS", "300000"),
    ];
    let admin = token(&Settings::development(), "acme", ALL_SCOPES);
    let http = reqwest::Client::new();

    let mut server = ServerProcess::start(data.path(), logs.path(), &env).await;
    let created: Value = http
        .post(server.url("/api/v1/challenges"))
        .bearer_auth(&admin)
        .json(&json!({"type": "token", "user_id": "u-1", "callback_url": hook.url("/hooks/challenge")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let cancelled = http
        .delete(server.url(&format!("/api/v1/challenges/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let held = hook.wait_for(1).await.remove(0);
    let event_id = held
        .header("x-challenge-event-id")
        .expect("an event id header")
        .to_string();
    assert!(event_id.starts_with("evt_"), "{event_id}");
    server.kill();

    let server = ServerProcess::start(data.path(), logs.path(), &env).await;
    let again = hook.wait_for(2).await.remove(1);
    assert_eq!(
        again.header("x-challenge-event-id"),
        Some(event_id.as_str())
    );
    assert_eq!(again.body, held.body, "the same body, byte for byte");
    let body: Value = serde_json::from_slice(&again.body).unwrap();
    assert_eq!(body["event_id"], event_id.as_str());
    assert_eq!(body["id"], id);
    assert_eq!(body["state"], "cancelled");
    assert_eq!(body["previous_state"], "issued");
    let secret: Value = http
        .get(server.url("/api/v1/webhooks/secret"))
        .bearer_auth(token(
            &Settings::development(),
            "acme",
            "challenge:configuration:get challenge:webhook:get",
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = secret["secret"].as_str().unwrap();
    assert!(webhook::verify(
        secret.as_bytes(),
        again.header("x-challenge-signature").unwrap(),
        &again.body,
        unix_now(),
        300
    ));
    eventually(Duration::from_secs(10), || async {
        (metric(&http, &server.base, "webhooks_pending").await == Some(0.0)).then_some(())
    })
    .await;
    drop(server);

    // Delivered means done: the next start has nothing left to send.
    let server = ServerProcess::start(data.path(), logs.path(), &env).await;
    assert_eq!(
        metric(&http, &server.base, "webhooks_pending").await,
        Some(0.0)
    );
    assert_eq!(hook.requests().len(), 2);
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_dead_lettered_after_its_last_attempt() {
    let hook = HttpSink::scripted(always(503));
    let server = TestServer::start_with(|s| {
        s.actions.allow_private = true;
        s.webhooks.max_retries = 2;
        s.webhooks.backoff_ms = 10;
    })
    .await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "callback_url": hook.url("/hooks/challenge")}))
        .await;
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    assert_eq!(
        server.answer_anonymously(id, token, true).await.status(),
        200
    );
    let http = reqwest::Client::new();
    let base = server.url("");
    eventually(Duration::from_secs(20), || async {
        (metric(&http, &base, "webhooks_dead_lettered_total").await == Some(1.0)).then_some(())
    })
    .await;
    let attempts = hook.requests();
    assert_eq!(attempts.len(), 3, "the first attempt and two retries");
    let ids: Vec<_> = attempts
        .iter()
        .map(|r| r.header("x-challenge-event-id").unwrap().to_string())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one event id: {ids:?}");
    assert_eq!(
        metric(&http, &base, "webhook_dead_letters").await,
        Some(1.0)
    );
    assert_eq!(metric(&http, &base, "webhooks_pending").await, Some(0.0));
}

#[tokio::test]
async fn a_webhook_refused_with_a_4xx_is_dead_lettered_at_once() {
    let hook = HttpSink::scripted(always(410));
    let server = TestServer::start_with(|s| {
        s.actions.allow_private = true;
        s.webhooks.backoff_ms = 10;
    })
    .await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "callback_url": hook.url("/hooks/challenge")}))
        .await;
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    assert_eq!(
        server.answer_anonymously(id, token, false).await.status(),
        200
    );
    let http = reqwest::Client::new();
    let base = server.url("");
    eventually(Duration::from_secs(20), || async {
        (metric(&http, &base, "webhooks_dead_lettered_total").await == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(hook.requests().len(), 1, "a 4xx is final");
    let body: Value = serde_json::from_slice(&hook.requests()[0].body).unwrap();
    assert_eq!(body["state"], "declined");
}
