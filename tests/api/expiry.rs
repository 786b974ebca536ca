//! Expiry on time, and what answers and commands get afterwards.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_one_second_challenge_expires_on_time_and_refuses_answers() {
    let server = TestServer::start().await;
    let created_at = Instant::now();
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "ttl_seconds": 1}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let token = created["actors"][0]["answer_token"]
        .as_str()
        .unwrap()
        .to_string();

    // A long-poll sees the change the moment the timer fires.
    let polled: Value = server
        .http
        .get(server.url(&format!("/api/v1/challenges/{id}?wait=10&state=issued")))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let elapsed = created_at.elapsed();
    assert_eq!(polled["state"], "expired");
    assert!(
        elapsed >= Duration::from_millis(900),
        "expired early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "expired late: {elapsed:?}"
    );

    let anonymous = server.answer_anonymously(&id, &token, true).await;
    assert_eq!(error_code(anonymous).await, (400, "answer_rejected".into()));
    let bearer = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"answer_token": token}),
        )
        .await;
    assert_eq!(error_code(bearer).await, (409, "expired".into()));
    let cancel = server
        .http
        .delete(server.url(&format!("/api/v1/challenges/{id}")))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(cancel).await, (409, "not_cancellable".into()));
    let complete = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(error_code(complete).await, (409, "not_completable".into()));
}

#[tokio::test]
async fn a_verified_challenge_that_is_never_completed_expires_too() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "ttl_seconds": 1}))
        .await;
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    assert_eq!(
        server.answer_anonymously(id, token, true).await.status(),
        200
    );
    let polled: Value = server
        .http
        .get(server.url(&format!("/api/v1/challenges/{id}?wait=10&state=verified")))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(polled["state"], "expired");
    assert_eq!(polled["answered_by"]["user_id"], "u-1");
}

#[tokio::test]
async fn terminal_challenges_are_deleted_after_retention() {
    let server = TestServer::start_with(|s| s.limits.retention_seconds = 1).await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let cancel = server
        .http
        .delete(server.url(&format!("/api/v1/challenges/{id}")))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    assert_eq!(server.state_of(&id).await["state"], "cancelled");
    eventually(Duration::from_secs(10), || async {
        (server.get(&server.admin(), &id).await.status() == 404).then_some(())
    })
    .await;
    let (settings, data) = server.stop().await;
    let restarted = TestServer::start_with(|s| {
        *s = settings;
        s.storage.data_dir = data.path().to_path_buf();
    })
    .await;
    let after = restarted.get(&restarted.admin(), &id).await;
    assert_eq!(error_code(after).await, (404, "challenge_not_found".into()));
}

#[tokio::test]
async fn the_live_quota_counts_only_open_challenges() {
    let server = TestServer::start_with(|s| s.limits.max_live_challenges = 2).await;
    let a = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let over = server
        .create(&server.admin(), json!({"type": "token", "user_id": "u-1"}))
        .await;
    assert_eq!(error_code(over).await, (429, "quota_exceeded".into()));
    let other = server
        .create(
            &server.token("globex", ALL_SCOPES),
            json!({"type": "token", "user_id": "u-1"}),
        )
        .await;
    assert_eq!(other.status(), 201, "the quota is per tenant");
    // Verified is still live; declining ends it and frees a slot.
    let id = a["id"].as_str().unwrap();
    let token = a["actors"][0]["answer_token"].as_str().unwrap();
    assert_eq!(
        server.answer_anonymously(id, token, false).await.status(),
        200
    );
    let freed = server
        .create(&server.admin(), json!({"type": "token", "user_id": "u-1"}))
        .await;
    assert_eq!(freed.status(), 201);
}

#[tokio::test]
async fn ended_challenges_count_toward_the_stored_cap_until_their_retention_ends() {
    let server = TestServer::start_with(|s| {
        s.limits.max_live_challenges = 2;
        s.limits.max_stored_challenges = 2;
        s.limits.retention_seconds = 1;
    })
    .await;
    let admin = server.admin();
    let a = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let a = a["id"].as_str().unwrap().to_string();
    let cancelled = server
        .http
        .delete(server.url(&format!("/api/v1/challenges/{a}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    // One live, one ended and kept: the tenant keeps as many as it may.
    let over = server
        .create(&admin, json!({"type": "token", "user_id": "u-1"}))
        .await;
    assert_eq!(error_code(over).await, (429, "quota_exceeded".into()));
    assert_eq!(server.get(&admin, &a).await.status(), 200, "still readable");
    // Once the ended one's retention is over it is deleted and frees its place.
    eventually(Duration::from_secs(10), || async {
        let r = server
            .create(&admin, json!({"type": "token", "user_id": "u-1"}))
            .await;
        (r.status() == 201).then_some(())
    })
    .await;
    assert_eq!(server.get(&admin, &a).await.status(), 404, "retired");
}
