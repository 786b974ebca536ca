//! The Agilicus face, judged by Agilicus' own Python SDK: `tests/sdk/agilicus_challenges.py`
//! runs against a server whose public base URL is its own address (the one-time-use
//! actions' URIs are built on it), in the virtualenv `.ci/test` makes (`tests/sdk/.venv`).
//! Beside it, what the SDK cannot show: the tenant taken from `org` when the token has no
//! `tenant` claim, tenants kept apart, and metrics labelled `face="agilicus"`.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::TestServer;

const ACTION_SCOPE: &str = "orders:approve";

fn python() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/.venv/bin/python");
    assert!(
        venv.exists(),
        "run .ci/test once (or: python3 -m venv tests/sdk/.venv && tests/sdk/.venv/bin/pip install -r tests/sdk/requirements.txt)"
    );
    venv
}

#[actix_rt::test]
async fn the_agilicus_sdk_drives_challenges_actions_and_totp_enrollment() {
    let server = TestServer::start_on_port(|s, port| {
        s.server.public_base_url = format!("http://127.0.0.1:{port}");
        s.actions.allow_private = true;
        s.actions.allowed_scopes = vec![ACTION_SCOPE.into()];
    })
    .await;
    let token = server.token(
        "acme",
        "challenge:post challenge:enrollment:get challenge:enrollment:post challenge:enrollment:delete",
    );
    let read_only = server.token("acme", "challenge:get");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/agilicus_challenges.py");
    let base = server.url("");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .env("BASE", base)
            .env("TOKEN", token)
            .env("READ_ONLY", read_only)
            .env("ACTION_SCOPE", ACTION_SCOPE)
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("agilicus sdk: ok"),
        "the SDK script failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"face="agilicus""#)
            && metrics.contains(r#"route="/v1/challenges/{challenge_id}/answers""#),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn the_tenant_comes_from_org_without_a_tenant_claim_and_challenges_stay_in_it() {
    // Tokens minted by this server carry the tenant in `org` only.
    let server = TestServer::start_with(|s| s.auth.tenant_claim = "org".into()).await;
    let token = server.token("acme", "challenge:post challenge:get");
    let created: Value = server
        .http
        .post(server.url("/v1/challenges"))
        .bearer_auth(&token)
        .json(&json!({"spec": {"user_id": "alice", "challenge_type": "code", "send_now": true}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["metadata"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    // The native face sees it in tenant acme, with native names …
    let native: Value = server.get(&token, &id).await.json().await.unwrap();
    assert_eq!(native["type"], "token");
    assert_eq!(native["state"], "issued");
    // … and another tenant does not.
    let other = server.token("other", "challenge:get");
    assert_eq!(server.get(&other, &id).await.status(), 404);
}

#[actix_rt::test]
async fn a_tenant_claim_list_without_the_tokens_claim_refuses_it() {
    let server = TestServer::start_with(|s| {
        s.compat.agilicus.tenant_claims = vec!["organisation".into()];
    })
    .await;
    let token = server.token("acme", "challenge:post");
    let response = server
        .http
        .post(server.url("/v1/challenges"))
        .bearer_auth(&token)
        .json(&json!({"spec": {"user_id": "alice", "challenge_type": "code"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], "unauthorized");
}
