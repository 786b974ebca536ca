//! Bad input gets a clear JSON error with a stable code and changes nothing.

use serde_json::{json, Value};

use crate::helpers::*;

async fn count(server: &TestServer) -> usize {
    let list: Value = server
        .http
        .get(server.url("/api/v1/challenges?page_size=1000"))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["challenges"].as_array().unwrap().len()
}

async fn raw_create(server: &TestServer, body: &str, content_type: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_create_requests_are_refused_with_codes_and_create_nothing() {
    let server = TestServer::start().await;
    let long = "x".repeat(257);
    let actors: Vec<Value> = (0..17)
        .map(|i| json!({"user_id": format!("a{i}")}))
        .collect();
    let fields: Vec<Value> = (0..21)
        .map(|_| json!({"label": "l", "value": "v"}))
        .collect();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "missing type",
            json!({"user_id": "u"}),
            400,
            "invalid_field",
        ),
        (
            "unknown type",
            json!({"type": "carrier_pigeon", "user_id": "u"}),
            400,
            "invalid_field",
        ),
        (
            "wrong type of user_id",
            json!({"type": "token", "user_id": 5}),
            400,
            "invalid_field",
        ),
        (
            "missing user_id",
            json!({"type": "token"}),
            400,
            "invalid_field",
        ),
        (
            "empty user_id",
            json!({"type": "token", "user_id": ""}),
            400,
            "invalid_field",
        ),
        (
            "control chars",
            json!({"type": "token", "user_id": "a\r\nb"}),
            400,
            "invalid_field",
        ),
        (
            "oversize user_id",
            json!({"type": "token", "user_id": long}),
            400,
            "field_too_long",
        ),
        (
            "unknown field",
            json!({"type": "token", "user_id": "u", "colour": "red"}),
            400,
            "unknown_field",
        ),
        (
            "unknown nested field",
            json!({"type": "token", "user_id": "u", "details": {"msg": "x"}}),
            400,
            "unknown_field",
        ),
        (
            "ttl zero",
            json!({"type": "token", "user_id": "u", "ttl_seconds": 0}),
            400,
            "ttl_out_of_range",
        ),
        (
            "ttl too long",
            json!({"type": "token", "user_id": "u", "ttl_seconds": 86401}),
            400,
            "ttl_out_of_range",
        ),
        (
            "negative ttl",
            json!({"type": "token", "user_id": "u", "ttl_seconds": -5}),
            400,
            "invalid_field",
        ),
        (
            "ttl as string",
            json!({"type": "token", "user_id": "u", "ttl_seconds": "300"}),
            400,
            "invalid_field",
        ),
        (
            "max_attempts zero",
            json!({"type": "token", "user_id": "u", "max_attempts": 0}),
            400,
            "max_attempts_out_of_range",
        ),
        (
            "max_attempts too many",
            json!({"type": "token", "user_id": "u", "max_attempts": 21}),
            400,
            "max_attempts_out_of_range",
        ),
        (
            "too many actors",
            json!({"type": "token", "user_id": "u", "actors": actors}),
            400,
            "too_many_items",
        ),
        (
            "no actors",
            json!({"type": "token", "user_id": "u", "actors": []}),
            400,
            "invalid_field",
        ),
        (
            "oversize actor",
            json!({"type": "token", "user_id": "u", "actors": [{"user_id": long}]}),
            400,
            "field_too_long",
        ),
        (
            "oversize message",
            json!({"type": "token", "user_id": "u", "details": {"message": "m".repeat(1025)}}),
            400,
            "field_too_long",
        ),
        (
            "too many fields",
            json!({"type": "token", "user_id": "u", "details": {"fields": fields}}),
            400,
            "too_many_items",
        ),
        (
            "oversize hidden details",
            json!({"type": "token", "user_id": "u", "hidden_details": {"k": "v".repeat(5000)}}),
            400,
            "field_too_long",
        ),
        (
            "hidden details not an object",
            json!({"type": "token", "user_id": "u", "hidden_details": [1]}),
            400,
            "invalid_field",
        ),
        (
            "callback not http",
            json!({"type": "token", "user_id": "u", "callback_url": "ftp://x"}),
            400,
            "invalid_url",
        ),
        (
            "callback without host",
            json!({"type": "token", "user_id": "u", "callback_url": "https:///x"}),
            400,
            "invalid_url",
        ),
        (
            "oversize idempotency key",
            json!({"type": "token", "user_id": "u", "idempotency_key": "k".repeat(129)}),
            400,
            "field_too_long",
        ),
        (
            "webauthn without a verified factor",
            json!({"type": "webauthn", "user_id": "u"}),
            409,
            "factor_not_verified",
        ),
        (
            "unknown policy",
            json!({"type": "token", "user_id": "u", "policy": "login"}),
            404,
            "policy_not_found",
        ),
        (
            "recipient for token",
            json!({"type": "token", "user_id": "u", "recipient": {"email": "a@example.com"}}),
            400,
            "invalid_field",
        ),
    ];
    for (name, body, status, code) in cases {
        let response = server.create(&server.admin(), body).await;
        assert_eq!(
            error_code(response).await,
            (status, code.to_string()),
            "{name}"
        );
    }
    for (name, body, content_type, status, code) in [
        (
            "malformed json",
            "{\"type\": ",
            "application/json",
            400,
            "malformed_json",
        ),
        (
            "not an object",
            "[]",
            "application/json",
            400,
            "invalid_field",
        ),
        ("empty body", "", "application/json", 400, "malformed_json"),
        (
            "wrong media type",
            "type=token",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
    ] {
        let response = raw_create(&server, body, content_type).await;
        assert_eq!(
            error_code(response).await,
            (status, code.to_string()),
            "{name}"
        );
    }
    let huge =
        json!({"type": "token", "user_id": "u", "hidden_details": {"k": "v".repeat(70_000)}})
            .to_string();
    let response = raw_create(&server, &huge, "application/json").await;
    assert_eq!(error_code(response).await, (413, "body_too_large".into()));
    let conflicting = server
        .http
        .post(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .header("Idempotency-Key", "a")
        .json(&json!({"type": "token", "user_id": "u", "idempotency_key": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(conflicting).await, (400, "invalid_field".into()));
    let unreadable_key = server
        .http
        .post(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(b"k\xff").unwrap(),
        )
        .json(&json!({"type": "token", "user_id": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(unreadable_key).await,
        (400, "invalid_header".into())
    );

    assert_eq!(count(&server).await, 0, "nothing may have been created");
}

#[tokio::test]
async fn bad_answers_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "max_attempts": 3}))
        .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/challenges/{id}/answer");
    let admin = server.admin();
    let cases: Vec<(Option<&str>, Value, u16, &str)> = vec![
        (None, json!({"allowed": true}), 400, "invalid_field"),
        (None, json!({"answer_token": 7}), 400, "invalid_field"),
        (
            None,
            json!({"answer_token": "x", "extra": 1}),
            400,
            "unknown_field",
        ),
        (
            None,
            json!({"answer_token": "short"}),
            400,
            "answer_rejected",
        ),
        (
            Some(&admin),
            json!({"code": "123456"}),
            400,
            "invalid_field",
        ),
        (
            Some(&admin),
            json!({"actor_id": "nonsense"}),
            400,
            "unknown_actor",
        ),
        (
            Some(&admin),
            json!({"allowed": "yes"}),
            400,
            "invalid_field",
        ),
    ];
    for (bearer, body, status, code) in cases {
        let response = server.post(bearer, &path, body.clone()).await;
        assert_eq!(
            error_code(response).await,
            (status, code.to_string()),
            "{body}"
        );
    }
    for unknown in ["ch_AAAAAAAAAAAAAAAAAAAAAA", "nonsense"] {
        let anonymous = server
            .post(
                None,
                &format!("/api/v1/challenges/{unknown}/answer"),
                json!({"answer_token": "t".repeat(43)}),
            )
            .await;
        assert_eq!(
            error_code(anonymous).await,
            (400, "answer_rejected".into()),
            "{unknown}"
        );
        let bearer = server
            .post(
                Some(&admin),
                &format!("/api/v1/challenges/{unknown}/answer"),
                json!({"answer_token": "t".repeat(43)}),
            )
            .await;
        assert_eq!(
            error_code(bearer).await,
            (404, "challenge_not_found".into()),
            "{unknown}"
        );
    }
    let state = server.state_of(id).await;
    assert_eq!(state["state"], "issued");
    assert_eq!(state["attempts_left"], 3);
}

#[tokio::test]
async fn bad_queries_are_refused() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    for query in [
        format!("/api/v1/challenges/{id}?wait=61"),
        format!("/api/v1/challenges/{id}?wait=soon"),
        format!("/api/v1/challenges/{id}?wait=5&state=waiting"),
        format!("/api/v1/challenges/{id}?colour=red"),
        "/api/v1/challenges?page_size=0".to_string(),
        "/api/v1/challenges?page_size=1001".to_string(),
        "/api/v1/challenges?page_token=zzz".to_string(),
        "/api/v1/challenges?state=open".to_string(),
        "/api/v1/challenges?type=carrier_pigeon".to_string(),
    ] {
        let response = server
            .http
            .get(server.url(&query))
            .bearer_auth(server.admin())
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (400, "invalid_query".into()),
            "{query}"
        );
    }
    let missing = server
        .get(&server.admin(), "ch_AAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(
        error_code(missing).await,
        (404, "challenge_not_found".into())
    );
    let garbage = server.get(&server.admin(), "not-an-id").await;
    assert_eq!(
        error_code(garbage).await,
        (404, "challenge_not_found".into())
    );
    let route = server
        .http
        .get(server.url("/api/v2/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(route).await, (404, "not_found".into()));
}

#[tokio::test]
async fn a_method_a_path_does_not_serve_is_405_with_the_methods_it_does_in_allow() {
    let server = TestServer::start().await;
    for (method, path, allow) in [
        ("PATCH", "/api/v1/challenges", "GET, POST"),
        ("TRACE", "/api/v1/challenges/ch_x", "GET, DELETE"),
        ("GET", "/api/v1/challenges/ch_x/answer", "POST"),
        ("POST", "/api/v1/policies/login", "GET, PUT, DELETE"),
        ("DELETE", "/api/v1/configuration", "GET, PUT"),
    ] {
        let response = server
            .http
            .request(method.parse().unwrap(), server.url(path))
            .bearer_auth(server.admin())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        assert_eq!(
            error_code(response).await,
            (405, "method_not_allowed".into()),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn a_number_with_a_zero_fraction_is_the_integer_it_spells_and_any_other_fraction_is_refused()
{
    let server = TestServer::start().await;
    let created = raw_create(
        &server,
        r#"{"type": "token", "user_id": "u", "ttl_seconds": 60.0, "max_attempts": 3.0}"#,
        "application/json",
    )
    .await;
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["max_attempts"], 3);
    let refused = raw_create(
        &server,
        r#"{"type": "token", "user_id": "u", "ttl_seconds": 60.5}"#,
        "application/json",
    )
    .await;
    assert_eq!(error_code(refused).await, (400, "invalid_field".into()));
    assert_eq!(count(&server).await, 1);
}

#[tokio::test]
async fn the_document_gives_each_enabled_type_the_create_fields_it_takes() {
    let server = TestServer::start().await;
    let doc: Value = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let create = &doc["components"]["schemas"]["CreateChallenge"]["oneOf"];
    let branch = |title: &str| {
        create
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["title"] == title)
            .unwrap_or_else(|| panic!("no branch {title}"))
            .clone()
    };
    let token = branch("token");
    assert_eq!(token["properties"]["recipient"], json!({"type": "null"}));
    assert_eq!(token["properties"]["actions"], json!({"type": "null"}));
    let action = branch("one_time_use_action");
    assert!(action["required"]
        .as_array()
        .unwrap()
        .contains(&json!("actions")));
    let email = branch("email_otp, one recipient");
    assert_eq!(
        email["properties"]["recipient"]["required"],
        json!(["email"])
    );
    let each = branch("email_otp, a recipient per actor");
    assert!(each["required"]
        .as_array()
        .unwrap()
        .contains(&json!("actors")));
    let push = branch("push");
    assert_eq!(push["properties"]["actors"], json!({"type": "null"}));
    let required = push["required"].as_array().unwrap();
    assert!(required.contains(&json!("details")) && required.contains(&json!("factor_id")));
    assert_eq!(
        push["properties"]["details"]["required"],
        json!(["message"])
    );
    // No SMS gateway is configured here, so sms_otp (400 channel_not_configured) is
    // not offered.
    assert!(create
        .as_array()
        .unwrap()
        .iter()
        .all(|b| !b["title"].as_str().unwrap().starts_with("sms_otp")));
    let ttl = &token["properties"]["ttl_seconds"]["anyOf"][0];
    assert_eq!(ttl["maximum"], server.settings.limits.max_ttl_seconds);
    // A push challenge refuses actors, with the code every refused field has.
    let response = server
        .create(
            &server.admin(),
            json!({"type": "push", "user_id": "u", "factor_id": "fac_x", "actors": [{"user_id": "u"}],
                   "details": {"message": "m"}}),
        )
        .await;
    assert_eq!(error_code(response).await, (400, "invalid_field".into()));
}
