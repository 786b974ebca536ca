//! Operations endpoints, configuration at start, OpenAPI.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let server = TestServer::start().await;
    assert_eq!(
        server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready: Value = server
        .http
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    server
        .answer_anonymously(
            id,
            created["actors"][0]["answer_token"].as_str().unwrap(),
            true,
        )
        .await;
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "challenges_created_total{type=\"token\"} 1",
        "challenges_answered_total{type=\"token\",outcome=\"verified\"} 1",
        "challenges_live 1",
        "challenge_answer_duration_seconds_bucket",
        "http_request_duration_seconds_bucket{face=\"native\",method=\"POST\",route=\"/api/v1/challenges\",status=\"201\"",
        "snapshot_flush_duration_seconds_bucket",
        "snapshot_flush_batch_size_bucket",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_the_native_api() {
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
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/challenges",
        "/api/v1/challenges/{id}",
        "/api/v1/challenges/{id}/answer",
        "/api/v1/challenges/{id}/complete",
        "/api/v1/challenges/{id}/resend",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert!(doc["components"]["schemas"]["CreateChallenge"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn a_bad_config_value_fails_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_challenge-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("CHALLENGE_SERVER__LIMITS__MAX_TTL_SECONDS", "forever")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("limits.max_ttl_seconds"), "{stderr}");

    let site = dir.path().join("site.toml");
    std::fs::write(&site, "[auth]\nalgorithms = [\"HS999\"]\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_challenge-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&site)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth.algorithms"), "{stderr}");
}

#[tokio::test]
async fn environment_overrides_and_layered_files_apply_and_the_dev_key_is_announced() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        data.path(),
        logs.path(),
        &[
            ("CHALLENGE_SERVER__LIMITS__MAX_TTL_SECONDS", "60"),
            ("CHALLENGE_SERVER__LIMITS__DEFAULT_TTL_SECONDS", "30"),
        ],
    )
    .await;
    let admin = token(
        &challenge_server::config::Settings::development(),
        "acme",
        ALL_SCOPES,
    );
    let http = reqwest::Client::new();
    let too_long = http
        .post(server.url("/api/v1/challenges"))
        .bearer_auth(&admin)
        .json(&json!({"type": "token", "user_id": "u", "ttl_seconds": 61}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(too_long).await, (400, "ttl_out_of_range".into()));
    let log = std::fs::read_to_string(&server.stderr_log).unwrap();
    assert!(log.contains("DEVELOPMENT SIGNING KEY"), "{log}");
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let server = TestServer::start_with(|s| {
        s.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let metrics_base = server.metrics_base.clone().expect("a metrics listener");
    let get = |url: String| server.http.get(url).send();
    let on_api = get(server.url("/metrics")).await.unwrap();
    assert_eq!(error_code(on_api).await, (404, "not_found".into()));
    let on_metrics = get(format!("{metrics_base}/metrics")).await.unwrap();
    assert_eq!(on_metrics.status(), 200);
    assert!(on_metrics
        .text()
        .await
        .unwrap()
        .contains("http_request_duration_seconds"));
    // The metrics listener serves nothing else; the API still answers on its own.
    let api_on_metrics = server
        .http
        .get(format!("{metrics_base}/api/v1/challenges"))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(api_on_metrics).await, (404, "not_found".into()));
    let list = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
}

#[tokio::test]
async fn metrics_can_require_a_bearer_scope() {
    let server = TestServer::start_with(|s| s.metrics.require_scope = true).await;
    let get = |token: Option<String>| {
        let mut request = server.http.get(server.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(
        error_code(get(None).await.unwrap()).await,
        (401, "unauthorized".into())
    );
    assert_eq!(
        error_code(get(Some(server.admin())).await.unwrap()).await,
        (403, "forbidden".into())
    );
    let granted = get(Some(server.token("ops", "challenge:metrics:get")))
        .await
        .unwrap();
    assert_eq!(granted.status(), 200);
    assert!(granted.text().await.unwrap().contains("# TYPE"));
}
