//! Until the restore at start has finished, every route but the operations ones answers
//! 503 `not_ready` with `Retry-After: 1`; then every restored challenge is there, shown
//! as it is now.

use std::time::Duration;

use challenge_server::config::Settings;
use challenge_server::model::{
    ActorId, ActorRecord, Challenge, ChallengeId, ChallengeType, Lifecycle, TenantId, TokenHash,
};
use challenge_server::store::SnapshotStore;
use serde_json::{json, Value};

use crate::helpers::*;

fn challenge(tenant: &TenantId, now: i64, expires_at: i64) -> Challenge {
    Challenge {
        id: ChallengeId::random(),
        tenant: tenant.clone(),
        kind: ChallengeType::Token,
        user_id: "u-1".into(),
        actors: vec![ActorRecord {
            id: ActorId::random(),
            user_id: "u-1".into(),
            token_hash: TokenHash([9; 32]),
        }],
        created_at: now,
        life: Lifecycle::issued(now, expires_at, 5),
        retention_ms: 3_600_000,
        extras: None,
    }
}

/// A data directory holding `count` live challenges, and the ids of one that is live and
/// one whose expiry passed while the server was down.
fn data_dir(dir: &std::path::Path, count: usize) -> (String, String) {
    let store = SnapshotStore::open(dir, 64 << 20).unwrap();
    let now = challenge_server::clock::Clock::now_ms(&challenge_server::clock::SystemClock);
    let acme = TenantId::parse("acme").unwrap();
    let globex = TenantId::parse("globex").unwrap();
    for _ in 0..count {
        store
            .put(&challenge(&globex, now, now + 3_600_000))
            .unwrap();
    }
    let live = challenge(&acme, now, now + 3_600_000);
    let overdue = challenge(&acme, now - 10_000, now - 1_000);
    store.put(&live).unwrap();
    store.put(&overdue).unwrap();
    store.flush_blocking().unwrap();
    (live.id.to_string(), overdue.id.to_string())
}

#[tokio::test]
async fn requests_during_the_restore_get_not_ready_and_then_every_challenge_is_there() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (live, overdue) = data_dir(data.path(), 150_000);
    let admin = token(&Settings::development(), "acme", ALL_SCOPES);
    let http = reqwest::Client::new();
    let server = ServerProcess::spawn(data.path(), logs.path(), &[]);
    eventually(Duration::from_secs(30), || async {
        let r = http.get(server.url("/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;

    // The first answers come while the restore runs.
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "the restore of 150k takes a while");
    let created = http
        .post(server.url("/api/v1/challenges"))
        .bearer_auth(&admin)
        .json(&json!({"type": "token", "user_id": "u-9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.headers()["retry-after"], "1");
    assert_eq!(error_code(created).await, (503, "not_ready".into()));
    let page = http
        .get(server.url(&format!("/c/{live}?t=x")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    let metrics = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200, "operations routes answer meanwhile");

    let mut not_ready = 0;
    let started = std::time::Instant::now();
    let view: Value = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the restore finishes"
        );
        let r = http
            .get(server.url(&format!("/api/v1/challenges/{live}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => break r.json().await.unwrap(),
            503 => {
                assert_eq!(error_code(r).await.1, "not_ready");
                not_ready += 1;
            }
            other => panic!("a restored challenge answered {other} during the restore"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(not_ready > 0, "some reads came during the restore");
    assert_eq!(view["state"], "issued");
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let r = http
        .get(server.url(&format!("/api/v1/challenges/{overdue}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["state"], "expired");
    let listed: Value = http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["challenges"].as_array().unwrap().len(),
        2,
        "nothing was created while not ready"
    );
}
