//! A tenant's runtime configuration: file values first, replaced with optimistic
//! locking, in effect from the next request, kept across restarts, held to the file's
//! caps, and each tenant's own.

use std::sync::Arc;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::helpers::*;

const CONFIGURATION_SCOPES: &str = "challenge:configuration:get challenge:configuration:put";

fn operator(server: &TestServer, tenant: &str) -> String {
    server.token(tenant, &format!("{ALL_SCOPES} {CONFIGURATION_SCOPES}"))
}

async fn get_configuration(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .http
        .get(server.url("/api/v1/configuration"))
        .bearer_auth(token)
        .send()
        .await
        .expect("configuration request")
}

async fn read(server: &TestServer, tenant: &str) -> Value {
    let response = get_configuration(server, &operator(server, tenant)).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn put_configuration(
    server: &TestServer,
    token: &str,
    if_match: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = server
        .http
        .put(server.url("/api/v1/configuration"))
        .bearer_auth(token)
        .json(body);
    if let Some(version) = if_match {
        request = request.header("If-Match", version);
    }
    request.send().await.expect("configuration request")
}

/// Replaces acme's configuration at `version` with `changes` applied to `base`.
async fn replace_ok(server: &TestServer, base: &Value, version: u64, changes: Value) -> Value {
    let mut body = base.clone();
    for (k, v) in changes.as_object().unwrap() {
        body[k] = v.clone();
    }
    let response = put_configuration(
        server,
        &operator(server, "acme"),
        Some(&format!("\"{version}\"")),
        &body,
    )
    .await;
    assert_eq!(response.status(), 200, "replace failed");
    assert_eq!(
        response.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", version + 1)
    );
    response.json().await.unwrap()
}

fn ttl_of(challenge: &Value) -> i64 {
    let at =
        |field: &str| OffsetDateTime::parse(challenge[field].as_str().unwrap(), &Rfc3339).unwrap();
    (at("expires_at") - at("created_at")).whole_seconds()
}

#[tokio::test]
async fn a_tenant_starts_with_the_file_values() {
    let server = TestServer::start_with(|s| {
        s.limits.default_ttl_seconds = 123;
        s.limits.max_live_challenges = 500;
    })
    .await;
    let response = get_configuration(&server, &operator(&server, "acme")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"].to_str().unwrap(), "\"0\"");
    let config: Value = response.json().await.unwrap();
    let l = &server.settings.limits;
    assert_eq!(
        config,
        json!({
            "default_ttl_seconds": 123,
            "max_ttl_seconds": l.max_ttl_seconds,
            "default_max_attempts": l.default_max_attempts,
            "max_attempts": l.max_attempts,
            "default_code_length": 6,
            "retention_seconds": l.retention_seconds,
            "max_live_challenges": 500,
            "long_poll_max_seconds": l.long_poll_max_seconds,
            "anonymous_failures_per_challenge_per_minute": l.anonymous_failures_per_challenge_per_minute,
            "allowed_action_scopes": [],
            "version": 0,
            "updated_at": null
        })
    );
}

#[tokio::test]
async fn a_replaced_configuration_applies_to_the_next_request() {
    let server = TestServer::start().await;
    let admin = operator(&server, "acme");
    let base = read(&server, "acme").await;
    let v1 = replace_ok(
        &server,
        &base,
        0,
        json!({"default_ttl_seconds": 60, "max_ttl_seconds": 600,
            "default_max_attempts": 2, "max_attempts": 4}),
    )
    .await;
    assert_eq!(v1["version"], 1);
    assert!(v1["updated_at"].is_string());
    assert_eq!(read(&server, "acme").await, v1);

    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    assert_eq!(ttl_of(&created), 60);
    assert_eq!(created["max_attempts"], 2);
    let too_long = server
        .create(
            &admin,
            json!({"type": "token", "user_id": "u-1", "ttl_seconds": 601}),
        )
        .await;
    assert_eq!(error_code(too_long).await, (400, "ttl_out_of_range".into()));
    let too_many = server
        .create(
            &admin,
            json!({"type": "token", "user_id": "u-1", "max_attempts": 5}),
        )
        .await;
    assert_eq!(
        error_code(too_many).await,
        (400, "max_attempts_out_of_range".into())
    );

    // One live challenge exists: a quota of one is full.
    replace_ok(
        &server,
        &v1,
        1,
        json!({"max_live_challenges": 1, "long_poll_max_seconds": 5,
            "anonymous_failures_per_challenge_per_minute": 0}),
    )
    .await;
    let over = server
        .create(&admin, json!({"type": "token", "user_id": "u-1"}))
        .await;
    assert_eq!(error_code(over).await, (429, "quota_exceeded".into()));
    let id = created["id"].as_str().unwrap();
    let long_wait = server
        .http
        .get(server.url(&format!("/api/v1/challenges/{id}?wait=6")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(long_wait).await, (400, "invalid_query".into()));
    let stranger = server.answer_anonymously(id, &"x".repeat(43), true).await;
    assert_eq!(
        error_code(stranger).await,
        (429, "rate_limited".into()),
        "no unrecognized anonymous answer is tolerated any more"
    );
    let pollable = server
        .http
        .get(server.url(&format!("/api/v1/challenges/{id}?wait=5&state=cancelled")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(pollable.status(), 200, "a wait within the cap is served");
}

#[tokio::test]
async fn bad_configurations_are_refused_naming_the_property_and_change_nothing() {
    let server = TestServer::start().await;
    let admin = operator(&server, "acme");
    let base = read(&server, "acme").await;
    let with = |changes: Value| {
        let mut body = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let without = |field: &str| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "max ttl above the server cap",
            with(json!({"max_ttl_seconds": 86401})),
            "out_of_range",
            "max_ttl_seconds",
        ),
        (
            "max ttl zero",
            with(json!({"max_ttl_seconds": 0})),
            "out_of_range",
            "max_ttl_seconds",
        ),
        (
            "default ttl above max",
            with(json!({"max_ttl_seconds": 100, "default_ttl_seconds": 101})),
            "out_of_range",
            "default_ttl_seconds",
        ),
        (
            "default ttl zero",
            with(json!({"default_ttl_seconds": 0})),
            "out_of_range",
            "default_ttl_seconds",
        ),
        (
            "max attempts above the cap",
            with(json!({"max_attempts": 21})),
            "out_of_range",
            "max_attempts",
        ),
        (
            "default attempts above max",
            with(json!({"max_attempts": 3, "default_max_attempts": 4})),
            "out_of_range",
            "default_max_attempts",
        ),
        (
            "code too short",
            with(json!({"default_code_length": 3})),
            "out_of_range",
            "default_code_length",
        ),
        (
            "code too long",
            with(json!({"default_code_length": 11})),
            "out_of_range",
            "default_code_length",
        ),
        (
            "retention over a year",
            with(json!({"retention_seconds": 31_536_001u64})),
            "out_of_range",
            "retention_seconds",
        ),
        (
            "quota above the cap",
            with(json!({"max_live_challenges": 1_000_001})),
            "out_of_range",
            "max_live_challenges",
        ),
        (
            "quota zero",
            with(json!({"max_live_challenges": 0})),
            "out_of_range",
            "max_live_challenges",
        ),
        (
            "long poll above the cap",
            with(json!({"long_poll_max_seconds": 61})),
            "out_of_range",
            "long_poll_max_seconds",
        ),
        (
            "anonymous failures too many",
            with(json!({"anonymous_failures_per_challenge_per_minute": 1001})),
            "out_of_range",
            "anonymous_failures_per_challenge_per_minute",
        ),
        (
            "missing property",
            without("retention_seconds"),
            "invalid_field",
            "retention_seconds",
        ),
        (
            "unknown property",
            with(json!({"webhook_url": "https://x.example"})),
            "unknown_field",
            "webhook_url",
        ),
        (
            "string number",
            with(json!({"max_ttl_seconds": "600"})),
            "invalid_field",
            "",
        ),
        (
            "negative number",
            with(json!({"max_live_challenges": -1})),
            "invalid_field",
            "",
        ),
        (
            "fraction",
            with(json!({"default_ttl_seconds": 1.5})),
            "invalid_field",
            "",
        ),
        (
            "null",
            with(json!({"max_attempts": null})),
            "invalid_field",
            "",
        ),
        ("not an object", json!([1, 2]), "invalid_field", ""),
    ];
    for (name, body, code, property) in cases {
        let response = put_configuration(&server, &admin, Some("\"0\""), &body).await;
        let status = response.status().as_u16();
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            (status, error["error"]["code"].as_str().unwrap()),
            (400, code),
            "{name}: {error}"
        );
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(property),
            "{name}: {message:?} should name {property}"
        );
    }
    let malformed = server
        .http
        .put(server.url("/api/v1/configuration"))
        .bearer_auth(&admin)
        .header("If-Match", "\"0\"")
        .header("Content-Type", "application/json")
        .body("{\"max_ttl_seconds\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(malformed).await, (400, "malformed_json".into()));
    assert_eq!(read(&server, "acme").await, base, "nothing changed");
}

#[tokio::test]
async fn a_replace_needs_the_current_version_and_a_refused_one_changes_nothing() {
    let server = TestServer::start().await;
    let admin = operator(&server, "acme");
    let base = read(&server, "acme").await;
    let mut changed = base.clone();
    changed["default_ttl_seconds"] = json!(42);

    let missing = put_configuration(&server, &admin, None, &changed).await;
    assert_eq!(
        error_code(missing).await,
        (428, "precondition_required".into())
    );
    let ahead = put_configuration(&server, &admin, Some("\"1\""), &changed).await;
    assert_eq!(ahead.status(), 412);
    let ahead: Value = ahead.json().await.unwrap();
    assert_eq!(ahead["error"]["code"], "version_conflict");
    assert_eq!(ahead["error"]["current_version"], 0);
    // A weak or unreadable entity tag matches no version (RFC 9110 §13.1.1).
    for unmatched in ["W/\"0\"", "zero"] {
        let refused = put_configuration(&server, &admin, Some(unmatched), &changed).await;
        assert_eq!(
            error_code(refused).await,
            (412, "version_conflict".into()),
            "{unmatched}"
        );
    }
    assert_eq!(read(&server, "acme").await, base);

    let v1 = replace_ok(&server, &base, 0, json!({"default_ttl_seconds": 42})).await;
    let stale = put_configuration(&server, &admin, Some("\"0\""), &changed).await;
    let stale: Value = stale.json().await.unwrap();
    assert_eq!(stale["error"]["code"], "version_conflict");
    assert_eq!(stale["error"]["current_version"], 1);
    assert_eq!(read(&server, "acme").await, v1, "nothing changed");
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    assert_eq!(ttl_of(&created), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replaces_of_one_version_have_exactly_one_winner() {
    let server = Arc::new(TestServer::start().await);
    let admin = operator(&server, "acme");
    let base = read(&server, "acme").await;
    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let server = server.clone();
        let admin = admin.clone();
        let mut body = base.clone();
        body["default_ttl_seconds"] = json!(100 + i);
        tasks.push(tokio::spawn(async move {
            let response = put_configuration(&server, &admin, Some("\"0\""), &body).await;
            let status = response.status().as_u16();
            (i, status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, status, body) = task.await.unwrap();
        match status {
            200 => winners.push(i),
            412 => assert_eq!(body["error"]["current_version"], 1),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let config = read(&server, "acme").await;
    assert_eq!(config["version"], 1);
    assert_eq!(config["default_ttl_seconds"], 100 + winners[0]);
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    assert_eq!(ttl_of(&created), 100 + winners[0] as i64);
}

#[tokio::test]
async fn a_replaced_configuration_survives_a_restart_and_wins_over_the_file() {
    let server = TestServer::start().await;
    let base = read(&server, "acme").await;
    let stored = replace_ok(
        &server,
        &base,
        0,
        json!({"default_ttl_seconds": 77, "max_ttl_seconds": 3600}),
    )
    .await;
    let (settings, data) = server.stop().await;

    // The file changes meanwhile; acme's stored values win, and a lowered cap holds them.
    let restarted = TestServer::start_with(|s| {
        *s = settings;
        s.storage.data_dir = data.path().to_path_buf();
        s.limits.default_ttl_seconds = 99;
        s.limits.max_ttl_seconds = 1800;
    })
    .await;
    let kept = read(&restarted, "acme").await;
    assert_eq!(kept["version"], 1);
    assert_eq!(kept["updated_at"], stored["updated_at"]);
    assert_eq!(kept["default_ttl_seconds"], 77);
    assert_eq!(kept["max_ttl_seconds"], 1800, "held to the lowered cap");
    let created = restarted
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    assert_eq!(ttl_of(&created), 77);

    let fresh = read(&restarted, "globex").await;
    assert_eq!(fresh["version"], 0);
    assert_eq!(
        fresh["default_ttl_seconds"], 99,
        "a tenant that never wrote follows the file"
    );

    // What was read can be written back at its version.
    let again = put_configuration(
        &restarted,
        &operator(&restarted, "acme"),
        Some("\"1\""),
        &kept,
    )
    .await;
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn each_tenant_has_its_own_configuration() {
    let server = TestServer::start().await;
    let base = read(&server, "acme").await;
    replace_ok(
        &server,
        &base,
        0,
        json!({"default_ttl_seconds": 10, "max_live_challenges": 1}),
    )
    .await;
    let globex = read(&server, "globex").await;
    assert_eq!(globex, base, "globex still has the file values");
    let globex_admin = operator(&server, "globex");
    for _ in 0..2 {
        let created = server
            .create(&globex_admin, json!({"type": "token", "user_id": "u-1"}))
            .await;
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        assert_eq!(ttl_of(&created), 300);
    }
    let stale_for_globex = put_configuration(&server, &globex_admin, Some("\"1\""), &base).await;
    let body: Value = stale_for_globex.json().await.unwrap();
    assert_eq!(
        body["error"]["current_version"], 0,
        "versions are per tenant"
    );
}

#[tokio::test]
async fn each_configuration_route_needs_its_scope() {
    let server = TestServer::start().await;
    let base = read(&server, "acme").await;
    let reader = server.token("acme", &format!("{ALL_SCOPES} challenge:configuration:get"));
    let writer = server.token("acme", &format!("{ALL_SCOPES} challenge:configuration:put"));
    let get = get_configuration(&server, &writer).await;
    assert_eq!(error_code(get).await, (403, "forbidden".into()));
    let put = put_configuration(&server, &reader, Some("\"0\""), &base).await;
    assert_eq!(error_code(put).await, (403, "forbidden".into()));
    let anonymous = server
        .http
        .get(server.url("/api/v1/configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(anonymous).await, (401, "unauthorized".into()));
    assert_eq!(get_configuration(&server, &reader).await.status(), 200);
    assert_eq!(read(&server, "acme").await["version"], 0, "nothing changed");
    let put = put_configuration(&server, &writer, Some("\"0\""), &base).await;
    assert_eq!(put.status(), 200);
}
