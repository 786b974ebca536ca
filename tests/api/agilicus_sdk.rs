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
        s.webauthn.relying_parties[0].origin = format!("http://localhost:{port}");
    })
    .await;
    let relying_party = server.settings.webauthn.relying_parties[0].clone();
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
            .env("RP_ID", relying_party.id)
            .env("RP_ORIGIN", relying_party.origin)
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

#[actix_rt::test]
async fn an_sms_challenge_sends_its_code_to_the_endpoint_and_takes_it_back() {
    let gateway = crate::sinks::HttpSink::start();
    let url = gateway.url("/send");
    let server = TestServer::start_with(|s| {
        s.sms.gateway_url = url.clone();
        s.sms.format = challenge_server::config::SmsFormat::Json;
    })
    .await;
    let token = server.token("acme", "challenge:post");
    let create = |spec: Value| {
        server
            .http
            .post(server.url("/v1/challenges"))
            .bearer_auth(&token)
            .json(&json!({ "spec": spec }))
            .send()
    };
    let refused = create(json!({"user_id": "alice", "challenge_type": "sms", "send_now": true}))
        .await
        .unwrap();
    assert_eq!(refused.status(), 400, "no phone number to send to");
    let created: Value = create(json!({"user_id": "alice", "challenge_types": ["sms"],
        "send_now": true, "challenge_endpoints": [{"type": "sms", "endpoint": "+15551234567"}]}))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(created["status"]["state"], "issued");
    assert!(
        created["status"].get("code").is_none(),
        "the code goes by SMS only"
    );
    assert_eq!(
        created["spec"]["challenge_endpoints"][0]["endpoint"],
        "+1••••••4567"
    );
    let id = created["metadata"]["id"].as_str().unwrap().to_string();
    let requests = crate::helpers::eventually(std::time::Duration::from_secs(10), || async {
        let seen = gateway.requests();
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    let sms: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(sms["to"], "+15551234567");
    let code: String = sms["body"]
        .as_str()
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .expect("a code")
        .to_string();
    let answer = |code: String| {
        let url = server.url(&format!("/v1/challenges/{id}/answers"));
        server
            .http
            .get(url)
            .query(&[
                ("challenge_answer", code.as_str()),
                ("allowed", "True"),
                ("challenge_type", "sms"),
            ])
            .send()
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = answer(wrong.to_string()).await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], "answer_rejected");
    let accepted = answer(code.clone()).await.unwrap();
    assert_eq!(accepted.status(), 200);
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(body["spec"]["answer"], code.as_str());
    let read: Value = server
        .http
        .get(server.url(&format!("/v1/challenges/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"]["state"], "challenge_passed");
}

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `answer_data` is a secret handed over once: the data directory holds it sealed
/// only, and it still opens for the answer after a restart.
#[actix_rt::test]
async fn answer_data_is_sealed_at_rest_and_opens_once_after_a_restart() {
    let secret = "answer-data-that-must-not-be-on-disk";
    let server = TestServer::start().await;
    let token = server.token("acme", "challenge:post");
    let created: Value = server
        .http
        .post(server.url("/v1/challenges"))
        .bearer_auth(&token)
        .json(
            &json!({"spec": {"user_id": "alice", "challenge_type": "code", "send_now": true,
            "answer_data": {"secret": secret}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["metadata"]["id"].as_str().unwrap().to_string();
    let code = created["status"]["code"].as_str().unwrap().to_string();
    let (settings, data) = server.stop().await;
    for path in files(data.path()) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "answer_data in clear in {path:?}"
        );
    }
    let restarted = TestServer::start_with(|s| {
        *s = settings;
        s.storage.data_dir = data.path().to_path_buf();
    })
    .await;
    let answer = || {
        restarted
            .http
            .get(restarted.url(&format!("/v1/challenges/{id}/answers")))
            .query(&[
                ("challenge_answer", code.as_str()),
                ("allowed", "true"),
                ("challenge_type", "code"),
            ])
            .send()
    };
    let answered: Value = answer().await.unwrap().json().await.unwrap();
    assert_eq!(answered["spec"]["answer_data"]["secret"], secret);
    assert_eq!(answer().await.unwrap().status(), 400, "once");
}

#[actix_rt::test]
async fn a_replaced_timeout_is_held_to_the_tenants_largest_ttl() {
    let server = TestServer::start().await;
    let admin = server.token(
        "acme",
        "challenge:post challenge:get challenge:configuration:get challenge:configuration:put",
    );
    let mut config: Value = server
        .http
        .get(server.url("/api/v1/configuration"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    config["default_ttl_seconds"] = json!(600);
    config["max_ttl_seconds"] = json!(900);
    let put = server
        .http
        .put(server.url("/api/v1/configuration"))
        .bearer_auth(&admin)
        .header("If-Match", "\"0\"")
        .json(&config)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let created: Value = server
        .http
        .post(server.url("/v1/challenges"))
        .bearer_auth(&admin)
        .json(&json!({"spec": {"user_id": "alice", "challenge_type": "code", "timeout_seconds": 600}}))
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
    let before: Value = server.get(&admin, &id).await.json().await.unwrap();
    let replace = |timeout: u64| {
        server
            .http
            .put(server.url(&format!("/v1/challenges/{id}")))
            .json(&json!({"spec": {"user_id": "alice", "challenge_type": "code", "timeout_seconds": timeout}}))
            .send()
    };
    // Within Agilicus' 86400 but beyond the tenant's 900: refused, nothing changed.
    let refused = replace(1200).await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], "ttl_out_of_range", "{body}");
    let after: Value = server.get(&admin, &id).await.json().await.unwrap();
    assert_eq!(after["expires_at"], before["expires_at"]);
    let shown: Value = server
        .http
        .get(server.url(&format!("/v1/challenges/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["spec"]["timeout_seconds"], 600);
    // At the bound it is taken.
    let taken: Value = replace(900).await.unwrap().json().await.unwrap();
    assert_eq!(taken["spec"]["timeout_seconds"], 900);
    let moved: Value = server.get(&admin, &id).await.json().await.unwrap();
    assert_ne!(moved["expires_at"], before["expires_at"]);
}

/// An Agilicus call without a bearer token (`get_challenge`, `replace_challenge`,
/// `get_answer`), as the SDK makes it.
async fn anonymous(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.http.request(method, server.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn agilicus_answer(
    server: &TestServer,
    id: &str,
    answer: &str,
    allowed: bool,
    kind: &str,
) -> (u16, Value) {
    let query = serde_urlencoded::to_string([
        ("challenge_answer", answer),
        ("allowed", if allowed { "True" } else { "False" }),
        ("challenge_type", kind),
    ])
    .unwrap();
    anonymous(
        server,
        reqwest::Method::GET,
        &format!("/v1/challenges/{id}/answers?{query}"),
        None,
    )
    .await
}

#[actix_rt::test]
async fn a_web_push_challenge_is_announced_when_issued_and_passed_by_its_devices_signature() {
    let gateway = crate::sinks::HttpSink::start();
    let url = gateway.url("/push");
    let server = TestServer::start_with(|s| {
        s.actions.allow_private = true;
        s.push.gateway_url = url;
    })
    .await;
    let token = server.token("acme", "challenge:post challenge:enrollment:get");
    let create = |spec: Value| {
        server
            .http
            .post(server.url("/v1/challenges"))
            .bearer_auth(&token)
            .json(&json!({ "spec": spec }))
            .send()
    };
    // No device yet: nothing to send it to, and nothing is made.
    let refused = create(json!({"user_id": "alice", "challenge_type": "web_push"}))
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], "no_enrolled_factor");

    let device = crate::push::enrolled_device(&server, "alice", "webhook").await;
    let created: Value = create(json!({"user_id": "alice", "challenge_type": "web_push",
        "origin": "portal.example"}))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(created["status"]["state"], "pending", "{created}");
    let id = created["metadata"]["id"].as_str().unwrap().to_string();
    assert!(crate::push::open_challenges(&server, &device)
        .await
        .is_empty());
    assert!(
        gateway.requests().is_empty(),
        "a pending challenge is not announced"
    );

    // Sent now: the gateway hears of it, and the device is shown it.
    let (status, replaced) = anonymous(
        &server,
        reqwest::Method::PUT,
        &format!("/v1/challenges/{id}"),
        Some(json!({"spec": {"user_id": "alice", "challenge_type": "web_push", "send_now": true}})),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["status"]["state"], "issued");
    let announced = gateway.wait_for(1).await;
    let event: Value = serde_json::from_slice(&announced[0].body).unwrap();
    assert_eq!(event["event"], "push.challenge.created");
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["factor_id"], device.factor_id.as_str());
    assert_eq!(event["details"]["fields"][0]["value"], "portal.example");
    let open = crate::push::open_challenges(&server, &device).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], id.as_str());

    // Only the device answers it: an answer through the face is refused.
    let (status, _) = agilicus_answer(&server, &id, "approved", true, "web_push").await;
    assert_eq!(status, 400);
    let payload = open[0]["signing_payload"].as_str().unwrap();
    let signature = device.sign(&format!("{payload}.approved"));
    let response =
        crate::push::device_answer(&server, &device.jwt(60), &id, "approved", &signature).await;
    assert_eq!(response.status(), 200);
    let (_, read) = anonymous(
        &server,
        reqwest::Method::GET,
        &format!("/v1/challenges/{id}"),
        None,
    )
    .await;
    assert_eq!(read["status"]["state"], "challenge_passed", "{read}");
    assert_eq!(read["spec"]["challenge_types"], json!(["web_push"]));

    // An endpoint naming a factor that is not the user's own is refused.
    let refused = create(json!({"user_id": "bob", "challenge_type": "web_push",
        "challenge_endpoints": [{"type": "web_push", "endpoint": device.factor_id}]}))
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], "unknown_endpoint");
}

#[actix_rt::test]
async fn several_types_make_one_challenge_that_the_first_answer_of_any_of_them_decides() {
    let sms = crate::sinks::HttpSink::start();
    let url = sms.url("/send");
    let server = TestServer::start_with(|s| {
        s.sms.gateway_url = url.clone();
        s.sms.format = challenge_server::config::SmsFormat::Json;
    })
    .await;
    let token = server.token("acme", "challenge:post challenge:get");
    let create = |spec: Value| {
        server
            .http
            .post(server.url("/v1/challenges"))
            .bearer_auth(&token)
            .json(&json!({ "spec": spec }))
            .send()
    };
    let phone = json!([{"type": "sms", "endpoint": "+15551234567"}]);
    let sms_code = |n: usize| {
        let sms = &sms;
        async move {
            let requests = sms.wait_for(n).await;
            let body: Value = serde_json::from_slice(&requests[n - 1].body).unwrap();
            body["body"]
                .as_str()
                .unwrap()
                .split(|c: char| !c.is_ascii_digit())
                .find(|run| run.len() == 6)
                .expect("a code")
                .to_string()
        }
    };

    // Sent at once: the SMS goes out, and the relayed code is shown once.
    let created: Value = create(
        json!({"user_id": "alice", "challenge_types": ["sms", "code"],
        "send_now": true, "challenge_endpoints": phone}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(created["status"]["state"], "issued", "{created}");
    let id = created["metadata"]["id"].as_str().unwrap().to_string();
    let relayed = created["status"]["code"].as_str().unwrap().to_string();
    assert_eq!(relayed.len(), 40);
    let texted = sms_code(1).await;
    // One engine: the native face shows one challenge with both methods.
    let native: Value = server.get(&token, &id).await.json().await.unwrap();
    let kinds: Vec<&str> = native["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["sms_otp", "token"], "{native}");
    // A type it does not have, or one method's secret given as the other's, is refused.
    let (status, body) = agilicus_answer(&server, &id, &texted, true, "totp").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("challenge_type_mismatch"))
    );
    let (status, _) = agilicus_answer(&server, &id, &relayed, true, "sms").await;
    assert_eq!(status, 400);
    let (status, _) = agilicus_answer(&server, &id, &texted, true, "code").await;
    assert_eq!(status, 400);
    // The texted code passes it; the relayed one then proves nothing.
    let (status, body) = agilicus_answer(&server, &id, &texted, true, "sms").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = agilicus_answer(&server, &id, &relayed, true, "code").await;
    assert_eq!(status, 400);
    let native: Value = server.get(&token, &id).await.json().await.unwrap();
    assert_eq!(native["state"], "verified");

    // Held pending: nothing is texted until it is sent, and its types stay as made.
    let created: Value = create(
        json!({"user_id": "alice", "challenge_types": ["code", "sms"],
        "challenge_endpoints": phone}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(created["status"]["state"], "pending", "{created}");
    let id = created["metadata"]["id"].as_str().unwrap().to_string();
    let relayed = created["status"]["code"].as_str().unwrap().to_string();
    let path = format!("/v1/challenges/{id}");
    let (status, body) = anonymous(
        &server,
        reqwest::Method::PUT,
        &path,
        Some(json!({"spec": {"user_id": "alice", "challenge_types": ["code"], "send_now": true}})),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("unsupported_challenge_types"))
    );
    let (_, read) = anonymous(&server, reqwest::Method::GET, &path, None).await;
    assert_eq!(
        read["status"]["state"], "pending",
        "the refused replace changed nothing"
    );
    assert_eq!(sms.requests().len(), 1);
    let (status, body) = anonymous(
        &server,
        reqwest::Method::PUT,
        &path,
        Some(
            json!({"spec": {"user_id": "alice", "challenge_types": ["sms", "code"],
                             "send_now": true}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["state"], "issued");
    assert!(body["status"].get("code").is_none());
    sms_code(2).await;
    let (status, _) = agilicus_answer(&server, &id, &relayed, true, "code").await;
    assert_eq!(status, 200);
    let (_, read) = anonymous(&server, reqwest::Method::GET, &path, None).await;
    assert_eq!(read["status"]["state"], "challenge_passed");

    // WebAuthn takes no other type; nor does an action challenge.
    for types in [
        json!(["webauthn", "code"]),
        json!(["code", "one_time_use_action"]),
    ] {
        let refused = create(json!({"user_id": "alice", "challenge_types": types}))
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error_code"], "unsupported_challenge_types", "{types}");
    }
}
