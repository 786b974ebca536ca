//! One-time-use action challenges: an approval or a decline fires HTTP actions, exactly
//! once, at real local receiving servers.

use std::sync::Arc;
use std::time::Duration;

use challenge_server::config::Settings;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sinks::{always, HttpSink, Reply, Script};

fn allow_loopback(s: &mut Settings) {
    s.actions.allow_private = true;
    s.actions.backoff_ms = 10;
}

async fn start() -> TestServer {
    TestServer::start_with(allow_loopback).await
}

fn action(method: &str, uri: String) -> Value {
    json!({"method": method, "uri": uri})
}

/// Polls the challenge until its answer's actions have all finished.
async fn settled(server: &TestServer, id: &str) -> Value {
    eventually(Duration::from_secs(30), || async {
        let c = server.state_of(id).await;
        let results = c["actions"]["results"].as_array()?;
        (!c["actions"]["chosen"].is_null() && results.iter().all(|r| r["status"] != "pending"))
            .then_some(c)
    })
    .await
}

#[tokio::test]
async fn an_approval_runs_only_the_approved_actions_in_order() {
    let receiver = HttpSink::scripted(always(200));
    let server = start().await;
    let created = server
        .create_ok(json!({"type": "one_time_use_action", "user_id": "requester",
            "actors": [{"user_id": "approver"}],
            "actions": {
                "approved": [
                    {"method": "post", "uri": receiver.url("/unlock"), "content_type": "application/json", "body": "{\"user\":\"requester\"}"},
                    action("PUT", receiver.url("/audit"))
                ],
                "declined": [action("POST", receiver.url("/deny"))]
            }}))
        .await;
    assert_eq!(created["actions"]["chosen"], Value::Null);
    assert_eq!(created["actions"]["approved"][0]["method"], "POST");
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    assert_eq!(
        server.answer_anonymously(id, token, true).await.status(),
        200
    );

    let done = settled(&server, id).await;
    assert_eq!(done["state"], "verified");
    assert_eq!(done["actions"]["chosen"], "approved");
    let results = done["actions"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["status"], "succeeded");
        assert_eq!(r["status_code"], 200);
        assert_eq!(r["attempts"], 1);
        assert!(r["finished_at"].is_string());
    }
    let seen = receiver.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/unlock")
    );
    assert_eq!(seen[0].body, b"{\"user\":\"requester\"}");
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(
        seen[0].header("idempotency-key"),
        Some(format!("{id}.approved.0").as_str())
    );
    assert_eq!(seen[0].header("authorization"), None, "no scopes, no token");
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("PUT", "/audit")
    );
    assert_eq!(
        seen[1].header("idempotency-key"),
        Some(format!("{id}.approved.1").as_str())
    );
}

#[tokio::test]
async fn a_decline_runs_only_the_declined_actions() {
    let receiver = HttpSink::scripted(always(204));
    let server = start().await;
    let created = server
        .create_ok(json!({"type": "one_time_use_action", "user_id": "u",
            "actions": {"approved": [action("POST", receiver.url("/unlock"))],
                        "declined": [action("POST", receiver.url("/deny"))]}}))
        .await;
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    assert_eq!(
        server.answer_anonymously(id, token, false).await.status(),
        200
    );
    let done = settled(&server, id).await;
    assert_eq!(done["state"], "declined");
    assert_eq!(done["actions"]["chosen"], "declined");
    assert_eq!(done["actions"]["results"][0]["status_code"], 204);
    let seen = receiver.requests();
    assert_eq!(
        seen.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        vec!["/deny"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_actors_run_one_set_of_actions() {
    let receiver = HttpSink::scripted(always(200));
    let server = Arc::new(start().await);
    let actors: Vec<Value> = (0..12)
        .map(|i| json!({"user_id": format!("a{i}")}))
        .collect();
    let created = server
        .create_ok(
            json!({"type": "one_time_use_action", "user_id": "u", "actors": actors,
            "actions": {"approved": [action("POST", receiver.url("/yes"))],
                        "declined": [action("POST", receiver.url("/no"))]}}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let server = server.clone();
        let id = id.clone();
        let token = created["actors"][i]["answer_token"]
            .as_str()
            .unwrap()
            .to_string();
        tasks.push(tokio::spawn(async move {
            server
                .answer_anonymously(&id, &token, i % 2 == 0)
                .await
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    let done = settled(&server, &id).await;
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let expected = if done["actions"]["chosen"] == "approved" {
        "/yes"
    } else {
        "/no"
    };
    assert_eq!(seen[0].path, expected);
    assert_eq!(
        done["answered_by"]["user_id"]
            .as_str()
            .unwrap()
            .chars()
            .next(),
        Some('a')
    );
}

#[tokio::test]
async fn an_action_with_scopes_carries_a_token_that_verifies_against_the_published_keys() {
    let receiver = HttpSink::scripted(always(200));
    let server = TestServer::start_with(|s| {
        allow_loopback(s);
        s.actions.allowed_scopes = vec!["orders:approve".into(), "orders:read".into()];
    })
    .await;
    let created = server
        .create_ok(
            json!({"type": "one_time_use_action", "user_id": "requester",
            "actors": [{"user_id": "boss"}, {"user_id": "deputy"}],
            "actions": {"approved": [{"method": "POST", "uri": receiver.url("/orders/7/approve"),
                                       "scopes": ["orders:approve", "orders:read"]}],
                        "declined": []}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let deputy = created["actors"][1]["answer_token"].as_str().unwrap();
    assert_eq!(
        server.answer_anonymously(id, deputy, true).await.status(),
        200
    );
    settled(&server, id).await;
    let seen = receiver.wait_for(1).await;
    let bearer = seen[0]
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_string();

    let jwks: JwkSet = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = decode_header(&bearer).unwrap().kid.unwrap();
    let jwk = jwks.find(&kid).expect("the token's kid is published");
    let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["127.0.0.1"]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    let claims = decode::<Value>(&bearer, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims;
    assert_eq!(
        claims["sub"], "deputy",
        "the token acts for the actor who answered"
    );
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["scope"], "orders:approve orders:read");
    assert_eq!(claims["challenge_id"], id);
    assert!(claims.get("org").is_none(), "no organisation was named");
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 300, "lifetime {lifetime}");

    // A token from somebody else's key does not verify.
    let other =
        jsonwebtoken::EncodingKey::from_ec_pem(include_bytes!("../fixtures/ec_private.pem"))
            .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.clone());
    let forged = jsonwebtoken::encode(&header, &claims, &other).unwrap();
    assert!(decode::<Value>(&forged, &DecodingKey::from_jwk(jwk).unwrap(), &validation).is_err());
}

#[tokio::test]
async fn a_503_is_retried_until_it_succeeds_and_a_400_is_not_retried() {
    let script: Script = Arc::new(|r, earlier| match (r.path.as_str(), earlier) {
        ("/flaky", 0 | 1) => Reply::status(503),
        ("/bad", _) => Reply::status(400),
        _ => Reply::status(200),
    });
    let receiver = HttpSink::scripted(script);
    let server = start().await;
    let created = server
        .create_ok(json!({"type": "one_time_use_action", "user_id": "u",
            "actions": {"approved": [action("POST", receiver.url("/flaky")), action("POST", receiver.url("/bad"))],
                        "declined": []}}))
        .await;
    let id = created["id"].as_str().unwrap();
    server
        .answer_anonymously(
            id,
            created["actors"][0]["answer_token"].as_str().unwrap(),
            true,
        )
        .await;
    let done = settled(&server, id).await;
    let results = &done["actions"]["results"];
    assert_eq!(results[0]["status"], "succeeded");
    assert_eq!(results[0]["attempts"], 3);
    assert_eq!(results[1]["status"], "failed");
    assert_eq!(results[1]["attempts"], 1);
    assert_eq!(results[1]["status_code"], 400);
    let seen = receiver.requests();
    let flaky: Vec<_> = seen.iter().filter(|r| r.path == "/flaky").collect();
    assert_eq!(flaky.len(), 3);
    assert!(flaky
        .iter()
        .all(|r| r.header("idempotency-key") == Some(format!("{id}.approved.0").as_str())));
    assert_eq!(seen.iter().filter(|r| r.path == "/bad").count(), 1);
}

#[tokio::test]
async fn retries_stop_at_the_configured_bound_and_redirects_are_not_followed() {
    let script: Script = Arc::new(|r, _| match r.path.as_str() {
        "/down" => Reply::status(500),
        "/moved" => Reply::status(302).location("/redirected"),
        _ => Reply::status(200),
    });
    let receiver = HttpSink::scripted(script);
    let server = TestServer::start_with(|s| {
        allow_loopback(s);
        s.actions.max_retries = 2;
    })
    .await;
    let created = server
        .create_ok(json!({"type": "one_time_use_action", "user_id": "u",
            "actions": {"approved": [action("POST", receiver.url("/down")), action("GET", receiver.url("/moved"))],
                        "declined": []}}))
        .await;
    let id = created["id"].as_str().unwrap();
    server
        .answer_anonymously(
            id,
            created["actors"][0]["answer_token"].as_str().unwrap(),
            true,
        )
        .await;
    let done = settled(&server, id).await;
    assert_eq!(done["actions"]["results"][0]["status"], "failed");
    assert_eq!(done["actions"]["results"][0]["attempts"], 3);
    assert_eq!(done["actions"]["results"][1]["status"], "failed");
    assert_eq!(done["actions"]["results"][1]["status_code"], 302);
    let seen = receiver.requests();
    assert_eq!(seen.iter().filter(|r| r.path == "/down").count(), 3);
    assert!(
        seen.iter().all(|r| r.path != "/redirected"),
        "a redirect was followed"
    );
}

#[tokio::test]
async fn an_unanswered_challenge_that_expires_runs_nothing() {
    let receiver = HttpSink::scripted(always(200));
    let server = start().await;
    let created = server
        .create_ok(json!({"type": "one_time_use_action", "user_id": "u", "ttl_seconds": 1,
            "actions": {"approved": [action("POST", receiver.url("/yes"))], "declined": [action("POST", receiver.url("/no"))]}}))
        .await;
    let id = created["id"].as_str().unwrap();
    let expired: Value = server
        .http
        .get(server.url(&format!("/api/v1/challenges/{id}?wait=10&state=issued")))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(expired["state"], "expired");
    assert_eq!(expired["actions"]["chosen"], Value::Null);
    assert_eq!(expired["actions"]["results"], json!([]));
    let late = server
        .answer_anonymously(
            id,
            created["actors"][0]["answer_token"].as_str().unwrap(),
            true,
        )
        .await;
    assert_eq!(late.status(), 400);
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn outbound_safety_and_bad_actions_are_refused_at_create() {
    let receiver = HttpSink::scripted(always(200));
    let strict = TestServer::start_with(|s| {
        s.actions.allowed_scopes = vec!["orders:read".into()];
    })
    .await;
    let ok_action =
        |uri: &str| json!({"approved": [{"method": "POST", "uri": uri}], "declined": []});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "loopback",
            ok_action(&receiver.url("/x")),
            "url_not_allowed",
        ),
        (
            "localhost",
            ok_action("http://localhost/x"),
            "url_not_allowed",
        ),
        ("private", ok_action("http://10.0.0.8/x"), "url_not_allowed"),
        (
            "metadata",
            ok_action("http://169.254.169.254/latest/meta-data"),
            "url_not_allowed",
        ),
        ("not http", ok_action("ftp://example.com/x"), "invalid_url"),
        ("no host", ok_action("http:///x"), "invalid_url"),
        (
            "bad method",
            json!({"approved": [{"method": "TRACE", "uri": "https://api.example.com/x"}]}),
            "invalid_method",
        ),
        (
            "empty",
            json!({"approved": [], "declined": []}),
            "invalid_field",
        ),
        (
            "unknown field",
            json!({"approved": [{"method": "POST", "uri": "https://api.example.com/x", "headers": {}}]}),
            "unknown_field",
        ),
        (
            "scope not allowed",
            json!({"approved": [{"method": "POST", "uri": "https://api.example.com/x", "scopes": ["admin"]}]}),
            "scope_not_allowed",
        ),
        (
            "scope with space",
            json!({"approved": [{"method": "POST", "uri": "https://api.example.com/x", "scopes": ["a b"]}]}),
            "invalid_field",
        ),
        (
            "body too large",
            json!({"approved": [{"method": "POST", "uri": "https://api.example.com/x", "body": "b".repeat(16385)}]}),
            "field_too_long",
        ),
        (
            "too many",
            json!({"approved": (0..9).map(|_| json!({"method": "GET", "uri": "https://api.example.com/x"})).collect::<Vec<_>>()}),
            "too_many_items",
        ),
        (
            "bad content type",
            json!({"approved": [{"method": "POST", "uri": "https://api.example.com/x", "content_type": "a\u{7f}b"}]}),
            "invalid_field",
        ),
    ];
    for (name, actions, code) in cases {
        let r = strict
            .create(
                &strict.admin(),
                json!({"type": "one_time_use_action", "user_id": "u", "actions": actions}),
            )
            .await;
        assert_eq!(r.status(), 400, "{name}");
        assert_eq!(error_code(r).await.1, code, "{name}");
    }
    let missing = strict
        .create(
            &strict.admin(),
            json!({"type": "one_time_use_action", "user_id": "u"}),
        )
        .await;
    assert_eq!(error_code(missing).await, (400, "invalid_field".into()));
    let on_token = strict
        .create(&strict.admin(), json!({"type": "token", "user_id": "u", "actions": ok_action("https://api.example.com/x")}))
        .await;
    assert_eq!(error_code(on_token).await, (400, "invalid_field".into()));
    let callback = strict
        .create(
            &strict.admin(),
            json!({"type": "token", "user_id": "u", "callback_url": receiver.url("/hook")}),
        )
        .await;
    assert_eq!(error_code(callback).await, (400, "url_not_allowed".into()));
    let fine = strict
        .create(&strict.admin(), json!({"type": "one_time_use_action", "user_id": "u",
            "actions": {"approved": [{"method": "POST", "uri": "https://api.example.com/x", "scopes": ["orders:read"]}]}}))
        .await;
    assert_eq!(fine.status(), 201);
    let list: Value = strict
        .http
        .get(strict.url("/api/v1/challenges"))
        .bearer_auth(strict.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["challenges"].as_array().unwrap().len(),
        1,
        "only the valid one was created"
    );

    let listed = TestServer::start_with(|s| {
        s.actions.allow_hosts = vec!["127.0.0.1".into(), ".example.com".into()]
    })
    .await;
    for (uri, status) in [
        (receiver.url("/x"), 201),
        ("https://api.example.com/x".to_string(), 201),
        ("https://example.org/x".to_string(), 400),
    ] {
        let r = listed
            .create(
                &listed.admin(),
                json!({"type": "one_time_use_action", "user_id": "u", "actions": ok_action(&uri)}),
            )
            .await;
        assert_eq!(r.status(), status, "{uri}");
    }
}

#[tokio::test]
async fn a_crash_mid_action_resumes_it_with_the_same_key_and_never_repeats_a_finished_one() {
    // /slow hangs the first time (the server is killed meanwhile), answers at once later.
    let script: Script = Arc::new(|r, earlier| match (r.path.as_str(), earlier) {
        ("/slow", 0) => Reply::status(200).after(Duration::from_secs(60)),
        _ => Reply::status(200),
    });
    let receiver = HttpSink::scripted(script);
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let env = [("CHALLENGE_SERVER__ACTIONS__ALLOW_PRIVATE", "true")];
    let mut server = ServerProcess::start(data.path(), logs.path(), &env).await;
    let http = reqwest::Client::new();
    let admin = token(&Settings::development(), "acme", ALL_SCOPES);
    let created: Value = http
        .post(server.url("/api/v1/challenges"))
        .bearer_auth(&admin)
        .json(&json!({"type": "one_time_use_action", "user_id": "u", "ttl_seconds": 600,
            "actions": {"approved": [action("POST", receiver.url("/fast")), action("POST", receiver.url("/slow"))], "declined": []}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let answered = http
        .post(server.url(&format!("/api/v1/challenges/{id}/answer")))
        .json(&json!({"answer_token": created["actors"][0]["answer_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 200);
    // Kill while /slow is in flight (so /fast has finished and been recorded).
    eventually(Duration::from_secs(30), || async {
        receiver
            .requests()
            .iter()
            .any(|r| r.path == "/slow")
            .then_some(())
    })
    .await;
    server.kill();

    let server = ServerProcess::start(data.path(), logs.path(), &env).await;
    let done = eventually(Duration::from_secs(30), || async {
        let c: Value = http
            .get(server.url(&format!("/api/v1/challenges/{id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        c["actions"]["results"]
            .as_array()?
            .iter()
            .all(|r| r["status"] == "succeeded")
            .then_some(c)
    })
    .await;
    assert_eq!(done["state"], "verified");
    let seen = receiver.requests();
    let fast: Vec<_> = seen.iter().filter(|r| r.path == "/fast").collect();
    let slow: Vec<_> = seen.iter().filter(|r| r.path == "/slow").collect();
    assert_eq!(fast.len(), 1, "a finished action ran again");
    assert_eq!(slow.len(), 2, "the interrupted action was resumed once");
    assert_eq!(
        slow[0].header("idempotency-key"),
        slow[1].header("idempotency-key")
    );
    assert_eq!(
        slow[0].header("idempotency-key"),
        Some(format!("{id}.approved.1").as_str())
    );
}

const OPERATOR_SCOPES: &str = "challenge:post challenge:get challenge:configuration:get \
     challenge:configuration:put challenge:policy:post";

#[tokio::test]
async fn action_scopes_are_denied_unless_the_server_the_tenant_or_the_policy_allows_them() {
    let server = start().await;
    let acme = server.token("acme", OPERATOR_SCOPES);
    let globex = server.token("globex", OPERATOR_SCOPES);
    let with_scope = |scope: &str, policy: Option<&str>| {
        let mut body = json!({"type": "one_time_use_action", "user_id": "u",
            "actions": {"approved": [{"method": "POST", "uri": "https://api.example.com/x",
                                      "scopes": [scope]}]}});
        if let Some(alias) = policy {
            body["policy"] = json!(alias);
            body.as_object_mut().unwrap().remove("type");
        }
        body
    };
    let refused = |r: reqwest::Response| async move { error_code(r).await };
    // Nothing allows anything by default.
    let r = server
        .create(&acme, with_scope("orders:approve", None))
        .await;
    assert_eq!(refused(r).await, (400, "scope_not_allowed".into()));

    // The tenant allows a scope through its configuration API.
    let config: Value = server
        .http
        .get(server.url("/api/v1/configuration"))
        .bearer_auth(&acme)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["allowed_action_scopes"], json!([]));
    let mut body = config.clone();
    body.as_object_mut().unwrap().remove("version");
    body.as_object_mut().unwrap().remove("updated_at");
    let put = |body: Value| {
        server
            .http
            .put(server.url("/api/v1/configuration"))
            .bearer_auth(&acme)
            .header("If-Match", "\"0\"")
            .json(&body)
            .send()
    };
    body["allowed_action_scopes"] = json!(["orders approve"]);
    assert_eq!(
        error_code(put(body.clone()).await.unwrap()).await,
        (400, "invalid_field".into())
    );
    body["allowed_action_scopes"] = json!(["orders:approve"]);
    assert_eq!(put(body).await.unwrap().status(), 200);
    let r = server
        .create(&acme, with_scope("orders:approve", None))
        .await;
    assert_eq!(r.status(), 201);
    let r = server.create(&acme, with_scope("orders:read", None)).await;
    assert_eq!(refused(r).await, (400, "scope_not_allowed".into()));
    // Another tenant is not allowed what acme allowed itself.
    let r = server
        .create(&globex, with_scope("orders:approve", None))
        .await;
    assert_eq!(refused(r).await, (400, "scope_not_allowed".into()));

    // A policy allows a scope for the challenges created from it only.
    let policy = |body: Value| {
        server
            .http
            .post(server.url("/api/v1/policies"))
            .bearer_auth(&acme)
            .json(&body)
            .send()
    };
    let r = policy(json!({"alias": "approvals", "type": "token",
        "allowed_action_scopes": ["orders:read"]}))
    .await
    .unwrap();
    assert_eq!(error_code(r).await, (400, "not_applicable".into()));
    let r = policy(json!({"alias": "approvals", "type": "one_time_use_action",
        "allowed_action_scopes": ["orders:read"]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = server
        .create(&acme, with_scope("orders:read", Some("approvals")))
        .await;
    assert_eq!(r.status(), 201);
    let r = server.create(&acme, with_scope("orders:read", None)).await;
    assert_eq!(refused(r).await, (400, "scope_not_allowed".into()));
    let r = server
        .create(&acme, with_scope("orders:delete", Some("approvals")))
        .await;
    assert_eq!(refused(r).await, (400, "scope_not_allowed".into()));

    // Exactly the two accepted creates exist.
    let list: Value = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(&acme)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["challenges"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn actions_and_webhooks_never_go_through_an_environment_proxy() {
    let proxy = HttpSink::scripted(always(200));
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let proxy_url = proxy.url("");
    let server = ServerProcess::start(
        data.path(),
        logs.path(),
        &[
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("HTTPS_PROXY", &proxy_url),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
            ("CHALLENGE_SERVER__ACTIONS__MAX_RETRIES", "0"),
            ("CHALLENGE_SERVER__WEBHOOKS__MAX_RETRIES", "0"),
            // The SMS gateway is the operator's own and may sit behind a proxy: it is the
            // control that shows the proxy is in the server's environment.
            (
                "CHALLENGE_SERVER__SMS__GATEWAY_URL",
                "http://sms-gateway.invalid/send",
            ),
        ],
    )
    .await;
    let admin = token(&Settings::development(), "acme", ALL_SCOPES);
    let http = reqwest::Client::new();
    let create = |body: Value| {
        http.post(server.url("/api/v1/challenges"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let created: Value = create(json!({"type": "one_time_use_action", "user_id": "u",
        "callback_url": "http://hooks.invalid/hook",
        "actions": {"approved": [{"method": "POST", "uri": "http://orders.invalid/approve"}]}}))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap();
    let answer = http
        .post(server.url(&format!("/api/v1/challenges/{id}/answer")))
        .json(&json!({"answer_token": created["actors"][0]["answer_token"], "allowed": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let result = eventually(Duration::from_secs(30), || async {
        let c: Value = http
            .get(server.url(&format!("/api/v1/challenges/{id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let status = c["actions"]["results"][0]["status"].clone();
        (status != "pending" && !status.is_null()).then_some(status)
    })
    .await;
    assert_eq!(result, "failed", "the action resolved its host itself");
    eventually(Duration::from_secs(30), || async {
        let text = http
            .get(server.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("deliveries_total{channel=\"webhook\"")
            .then_some(())
    })
    .await;
    let sms =
        create(json!({"type": "sms_otp", "user_id": "u", "recipient": {"phone": "+15551234567"}}))
            .await
            .unwrap();
    assert_eq!(sms.status(), 201);
    let seen = proxy.wait_for(1).await;
    assert_eq!(
        seen.len(),
        1,
        "only the SMS gateway's request used the proxy"
    );
    assert_eq!(seen[0].header("host"), Some("sms-gateway.invalid"));
}

#[tokio::test]
async fn metadata_and_special_purpose_addresses_are_refused_even_with_allow_private() {
    let server = start().await;
    for uri in [
        "http://168.63.129.16/machine",
        "http://100.100.100.200/latest/meta-data",
        "http://[::ffff:10.0.0.1]/x",
        "http://[::a9fe:a9fe]/x",
        "http://[64:ff9b::a9fe:a9fe]/x",
        "http://[2002:a9fe:a9fe::]/x",
        "http://[fec0::1]:1/x",
        "http://192.0.2.1/x",
    ] {
        let action = server
            .create(
                &server.admin(),
                json!({"type": "one_time_use_action", "user_id": "u",
                "actions": {"approved": [{"method": "POST", "uri": uri}]}}),
            )
            .await;
        let callback = server
            .create(
                &server.admin(),
                json!({"type": "token", "user_id": "u", "callback_url": uri}),
            )
            .await;
        if uri.contains("fec0") {
            // Site-local is a private range: allow_private opens it.
            assert_eq!(action.status(), 201, "{uri}");
            assert_eq!(callback.status(), 201, "{uri}");
            continue;
        }
        assert_eq!(
            error_code(action).await,
            (400, "url_not_allowed".into()),
            "{uri}"
        );
        assert_eq!(
            error_code(callback).await,
            (400, "url_not_allowed".into()),
            "{uri}"
        );
    }
}
