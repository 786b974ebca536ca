//! WebAuthn factors and `webauthn` challenges. Over HTTP: enrollment opens a
//! registration under one of the tenant's relying parties, and every bad input
//! (malformed or forged attestation, unknown relying party, missing fields, another
//! tenant's factor) is refused with its code and nothing changes. In Debian chromium
//! with a CDP virtual authenticator (tests/support/webauthn.mjs): enrollment in its page,
//! a challenge answered in its page, and the assertions that must fail — forged,
//! replayed, for another challenge, by an unknown credential, from another origin.
//!
//! The server listens on 127.0.0.1 and the browser opens it as `localhost`, the relying
//! party id (browsers refuse an IP address as one; localhost is a secure context).

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::helpers::{error_code, TestServer, ALL_SCOPES};

const ENROLLMENT: &str =
    "challenge:enrollment:get challenge:enrollment:post challenge:enrollment:delete";

/// A server whose relying party `localhost` has the origin the browser opens it at.
async fn server() -> TestServer {
    TestServer::start_on_port(|s, port| {
        s.webauthn.relying_parties[0].origin = format!("http://localhost:{port}");
    })
    .await
}

fn admin(server: &TestServer, tenant: &str) -> String {
    server.token(tenant, &format!("{ALL_SCOPES} {ENROLLMENT}"))
}

fn localhost(server: &TestServer, path: &str) -> String {
    format!("{}{path}", server.base.replace("127.0.0.1", "localhost"))
}

async fn enroll(server: &TestServer, tenant: &str, user: &str, body: Value) -> reqwest::Response {
    server
        .post(
            Some(&admin(server, tenant)),
            &format!("/api/v1/users/{user}/factors"),
            body,
        )
        .await
}

async fn enroll_ok(server: &TestServer, user: &str) -> Value {
    let response = enroll(
        server,
        "acme",
        user,
        json!({"type": "webauthn", "friendly_name": "laptop"}),
    )
    .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn verify(
    server: &TestServer,
    tenant: &str,
    user: &str,
    id: &str,
    body: Value,
) -> reqwest::Response {
    server
        .post(
            Some(&admin(server, tenant)),
            &format!("/api/v1/users/{user}/factors/{id}/verify"),
            body,
        )
        .await
}

async fn factor(server: &TestServer, user: &str, id: &str) -> Value {
    let response = server
        .http
        .get(server.url(&format!("/api/v1/users/{user}/factors/{id}")))
        .bearer_auth(admin(server, "acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn answer(server: &TestServer, id: &str, body: Value) -> reqwest::Response {
    server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/answer"),
            body,
        )
        .await
}

/// Runs tests/support/webauthn.mjs with a scenario and returns what it printed.
async fn browser(scenario: Value) -> Value {
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenario.json");
    std::fs::write(&file, scenario.to_string()).unwrap();
    let output = tokio::process::Command::new("node")
        .arg(support.join("webauthn.mjs"))
        .arg(&file)
        .current_dir(&support)
        .output()
        .await
        .expect("node runs (tests need Node.js, chromium and `npm ci` in tests/support; .ci/run installs them)");
    assert!(
        output.status.success(),
        "browser script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

/// Enrolls `user` in the enrollment page: the factor id and the authenticator's
/// credentials (for later runs).
async fn enrolled_in_browser(server: &TestServer, user: &str) -> (String, Value) {
    let enrolled = enroll_ok(server, user).await;
    let id = enrolled["id"].as_str().unwrap().to_string();
    let page = enrolled["registration"]["enrollment_url"].as_str().unwrap();
    let seen =
        browser(json!({"steps": [{"page": page, "click": "Register passkey or security key"}]}))
            .await;
    let step = &seen["steps"][0];
    assert_eq!(step["status"], 200, "{seen}");
    assert!(
        step["text"].as_str().unwrap().contains("registered"),
        "{seen}"
    );
    (id, seen["credentials"].clone())
}

async fn create_webauthn(server: &TestServer, body: Value) -> Value {
    let response = server.create(&server.admin(), body).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
async fn an_enrollment_opens_a_registration_under_the_tenants_relying_party() {
    let server = server().await;
    let enrolled = enroll_ok(&server, "alice").await;
    assert_eq!(enrolled["type"], "webauthn");
    assert_eq!(enrolled["status"], "unverified");
    assert_eq!(enrolled["webauthn"]["relying_party_id"], "localhost");
    assert_eq!(enrolled["webauthn"]["credential"], Value::Null);
    let options = &enrolled["registration"]["creation_options"]["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], "alice");
    assert!(
        URL_SAFE_NO_PAD
            .decode(options["challenge"].as_str().unwrap())
            .unwrap()
            .len()
            >= 16
    );
    let id = enrolled["id"].as_str().unwrap();
    let page = enrolled["registration"]["enrollment_url"].as_str().unwrap();
    assert!(
        page.starts_with(&localhost(&server, &format!("/enroll/{id}?t="))),
        "{page}"
    );
    assert!(enrolled["registration"]["expires_at"].is_string());

    let read = factor(&server, "alice", id).await;
    assert!(
        read.get("registration").is_none(),
        "shown at enrollment only"
    );
    assert_eq!(read["webauthn"]["relying_party_id"], "localhost");

    // The page opens with its token only, with a script allowed by nonce alone.
    let shown = server.http.get(page).send().await.unwrap();
    assert_eq!(shown.status(), 200);
    let csp = shown.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'nonce-") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let html = shown.text().await.unwrap();
    assert!(!html.contains("onclick") && html.contains("navigator.credentials.create"));
    let wrong = page.rsplit_once("t=").unwrap().0.to_string() + "t=" + &"A".repeat(43);
    assert_eq!(server.http.get(&wrong).send().await.unwrap().status(), 404);
    let no_token = page.split_once('?').unwrap().0;
    assert_eq!(
        server.http.get(no_token).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn every_bad_attestation_is_refused_with_its_code_and_the_factor_stays_unverified() {
    let server = server().await;
    let enrolled = enroll_ok(&server, "bob").await;
    let id = enrolled["id"].as_str().unwrap();
    let forged = json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"attestationObject": "o2NmbXRkbm9uZQ", "clientDataJSON": "e30"}});
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"credential": {"id": 1}}), 400, "invalid_credential"),
        (json!({"credential": "not json"}), 400, "invalid_credential"),
        (json!({"credential": [1, 2]}), 400, "invalid_credential"),
        (json!({"credential": forged}), 400, "attestation_rejected"),
        (
            json!({"credential": forged.to_string()}),
            400,
            "attestation_rejected",
        ),
        (json!({}), 400, "invalid_field"),
        (json!({"code": "123456"}), 400, "invalid_field"),
        (
            json!({"credential": forged, "code": "1"}),
            400,
            "invalid_field",
        ),
        (
            json!({"credential": forged, "colour": "red"}),
            400,
            "unknown_field",
        ),
    ];
    for (body, status, code) in cases {
        let response = verify(&server, "acme", "bob", id, body.clone()).await;
        assert_eq!(
            error_code(response).await,
            (status, code.to_string()),
            "{body}"
        );
    }
    let response = verify(&server, "globex", "bob", id, json!({"credential": forged})).await;
    assert_eq!(error_code(response).await, (404, "factor_not_found".into()));
    let read = factor(&server, "bob", id).await;
    assert_eq!(read["status"], "unverified");
    assert_eq!(read["webauthn"]["credential"], Value::Null);
}

#[tokio::test]
async fn a_bad_webauthn_enrollment_or_challenge_is_refused_and_nothing_is_stored() {
    let server = server().await;
    for (body, code) in [
        (
            json!({"type": "webauthn", "relying_party_id": "elsewhere.example"}),
            "unknown_relying_party",
        ),
        (
            json!({"type": "webauthn", "relying_party_id": ""}),
            "invalid_field",
        ),
        (json!({"type": "webauthn", "issuer": "x"}), "invalid_field"),
    ] {
        let response = enroll(&server, "acme", "carol", body.clone()).await;
        assert_eq!(
            error_code(response).await,
            (400, code.to_string()),
            "{body}"
        );
    }
    let listed: Value = server
        .http
        .get(server.url("/api/v1/users/carol/factors"))
        .bearer_auth(admin(&server, "acme"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["factors"], json!([]), "nothing enrolled");

    // Challenges: no verified factor, an unverified one, another tenant's, another type.
    let open = enroll_ok(&server, "carol").await;
    let open_id = open["id"].as_str().unwrap();
    let totp: Value = enroll(&server, "acme", "carol", json!({"type": "totp"}))
        .await
        .json()
        .await
        .unwrap();
    let cases = [
        (
            json!({"type": "webauthn", "user_id": "carol"}),
            409,
            "factor_not_verified",
        ),
        (
            json!({"type": "webauthn", "user_id": "carol", "factor_id": open_id}),
            409,
            "factor_not_verified",
        ),
        (
            json!({"type": "webauthn", "user_id": "dave", "factor_id": open_id}),
            404,
            "factor_not_found",
        ),
        (
            json!({"type": "webauthn", "user_id": "carol", "factor_id": totp["id"]}),
            400,
            "factor_type_mismatch",
        ),
        (
            json!({"type": "webauthn", "user_id": "carol", "factor_id": "fac_nope"}),
            404,
            "factor_not_found",
        ),
    ];
    for (body, status, code) in cases {
        let response = server.create(&server.admin(), body.clone()).await;
        assert_eq!(
            error_code(response).await,
            (status, code.to_string()),
            "{body}"
        );
    }
    let globex = server.token("globex", ALL_SCOPES);
    let response = server
        .create(
            &globex,
            json!({"type": "webauthn", "user_id": "carol", "factor_id": open_id}),
        )
        .await;
    assert_eq!(error_code(response).await, (404, "factor_not_found".into()));
    let listed: Value = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["challenges"], json!([]), "no challenge created");
}

#[tokio::test]
async fn a_registration_closes_when_it_expires() {
    let server = TestServer::start_on_port(|s, port| {
        s.webauthn.relying_parties[0].origin = format!("http://localhost:{port}");
        s.webauthn.enrollment_ttl_seconds = 1;
    })
    .await;
    let enrolled = enroll_ok(&server, "erin").await;
    let id = enrolled["id"].as_str().unwrap();
    let page = enrolled["registration"]["enrollment_url"]
        .as_str()
        .unwrap()
        .to_string();
    crate::helpers::eventually(std::time::Duration::from_secs(5), || {
        let page = page.clone();
        let http = server.http.clone();
        async move { (http.get(&page).send().await.ok()?.status() == 404).then_some(()) }
    })
    .await;
    let forged = json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"attestationObject": "o2NmbXRkbm9uZQ", "clientDataJSON": "e30"}});
    let response = verify(&server, "acme", "erin", id, json!({"credential": forged})).await;
    assert_eq!(
        error_code(response).await,
        (409, "enrollment_expired".into())
    );
}

/// The whole flow in chromium: enroll in the page, answer a challenge in its page; the
/// factor's counter and `last_used_at` move, and the page cannot be used again.
#[tokio::test]
async fn a_person_enrolls_a_passkey_and_answers_a_challenge_in_the_browser() {
    let server = server().await;
    let (factor_id, credentials) = enrolled_in_browser(&server, "alice").await;
    let verified = factor(&server, "alice", &factor_id).await;
    assert_eq!(verified["status"], "verified");
    let credential = &verified["webauthn"]["credential"];
    assert!(credential["id"].as_str().unwrap().len() >= 16, "{verified}");
    assert_eq!(verified["last_used_at"], Value::Null);
    let counter_before = credential["sign_count"].as_u64().unwrap();

    let created = create_webauthn(
        &server,
        json!({"type": "webauthn", "user_id": "alice", "details": {"message": "Sign in to Acme?"}}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let options = &created["webauthn"]["request_options"]["publicKey"];
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(
        options["allowCredentials"][0]["id"], credential["id"],
        "the user's verified credential is allowed"
    );
    assert_eq!(created["webauthn"]["factor_ids"], json!([factor_id]));
    let url = created["actors"][0]["answer_url"].as_str().unwrap();
    assert!(
        url.starts_with(&localhost(&server, &format!("/c/{id}?t="))),
        "{url}"
    );

    let seen = browser(json!({"credentials": credentials,
        "steps": [{"page": url, "click": "Use passkey or security key"}]}))
    .await;
    let step = &seen["steps"][0];
    assert!(
        step["shown"].as_str().unwrap().contains("Sign in to Acme?"),
        "{seen}"
    );
    assert!(step["csp"].as_str().unwrap().contains("script-src 'nonce-"));
    assert_eq!(step["status"], 200, "{seen}");
    assert!(
        step["text"].as_str().unwrap().contains("Approved"),
        "{seen}"
    );
    assert_eq!(server.state_of(id).await["state"], "verified");
    let used = factor(&server, "alice", &factor_id).await;
    assert!(used["last_used_at"].is_string());
    assert!(
        used["webauthn"]["credential"]["sign_count"]
            .as_u64()
            .unwrap()
            > counter_before,
        "the counter moved: {used}"
    );

    let again = server.http.get(url).send().await.unwrap();
    assert_eq!(again.status(), 409, "a used link shows it was used");
}

/// Every assertion that must fail does, costs an attempt and changes nothing else:
/// flipped signature bytes, an assertion for another challenge, a replay, an unknown
/// credential, another origin. Another tenant's challenge is not found.
#[tokio::test]
async fn forged_replayed_foreign_and_misplaced_assertions_are_refused() {
    let server = server().await;
    let (factor_id, credentials) = enrolled_in_browser(&server, "bob").await;
    let body =
        json!({"type": "webauthn", "user_id": "bob", "factor_id": factor_id, "max_attempts": 10});
    let target = create_webauthn(&server, body.clone()).await;
    let other = create_webauthn(&server, body.clone()).await;
    let id = target["id"].as_str().unwrap();
    let options = &target["webauthn"]["request_options"];
    let other_options = &other["webauthn"]["request_options"];
    let origin = localhost(&server, "/healthz");
    let seen = browser(json!({"credentials": credentials, "steps": [
        {"get": origin, "options": other_options},
        {"foreign": origin, "options": options},
        {"elsewhere": options},
        {"get": origin, "options": options},
    ]}))
    .await;
    let for_other = seen["steps"][0]["credential"].clone();
    let foreign = seen["steps"][1]["credential"].clone();
    let elsewhere = seen["steps"][2]["credential"].clone();
    let good = seen["steps"][3]["credential"].clone();
    for (name, c) in [
        ("other", &for_other),
        ("foreign", &foreign),
        ("elsewhere", &elsewhere),
        ("good", &good),
    ] {
        assert!(c.is_object(), "{name}: {seen}");
    }
    let mut flipped = good.clone();
    let mut signature = URL_SAFE_NO_PAD
        .decode(flipped["response"]["signature"].as_str().unwrap())
        .unwrap();
    let last = signature.len() - 1;
    signature[last] ^= 0x01;
    flipped["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode(&signature));
    let counter_before =
        factor(&server, "bob", &factor_id).await["webauthn"]["credential"]["sign_count"].clone();

    let mut attempts_left = 10;
    for (name, assertion) in [
        ("flipped signature", &flipped),
        ("signed for another challenge", &for_other),
        ("an unknown credential", &foreign),
        ("from another origin", &elsewhere),
    ] {
        let response = answer(&server, id, json!({"credential": assertion})).await;
        assert_eq!(response.status(), 400, "{name}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "wrong_answer", "{name}");
        attempts_left -= 1;
        let now = server.state_of(id).await;
        assert_eq!(now["state"], "issued", "{name}");
        assert_eq!(
            now["attempts_left"], attempts_left,
            "{name}: an attempt is used"
        );
    }
    let unchanged = factor(&server, "bob", &factor_id).await;
    assert_eq!(
        unchanged["webauthn"]["credential"]["sign_count"],
        counter_before
    );
    assert_eq!(unchanged["last_used_at"], Value::Null);

    // Another tenant sees no such challenge; malformed JSON costs nothing.
    let globex = server.token("globex", ALL_SCOPES);
    let response = server
        .post(
            Some(&globex),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"credential": good}),
        )
        .await;
    assert_eq!(
        error_code(response).await,
        (404, "challenge_not_found".into())
    );
    let response = answer(&server, id, json!({"credential": {"id": "x"}})).await;
    assert_eq!(
        error_code(response).await,
        (400, "invalid_credential".into())
    );
    let response = answer(&server, id, json!({"code": "123456"})).await;
    assert_eq!(response.status(), 400);
    let response = answer(&server, id, json!({})).await;
    assert_eq!(
        error_code(response).await,
        (400, "credential_required".into())
    );
    assert_eq!(server.state_of(id).await["attempts_left"], attempts_left);

    // The good assertion answers it, anonymously with the answer token; its replay is
    // refused here and on the other challenge.
    let token = target["actors"][0]["answer_token"].as_str().unwrap();
    let response = server
        .post(
            None,
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"answer_token": token, "credential": good}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(server.state_of(id).await["state"], "verified");
    let response = server
        .post(
            None,
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"answer_token": token, "credential": good}),
        )
        .await;
    assert_eq!(error_code(response).await, (400, "answer_rejected".into()));
    let other_id = other["id"].as_str().unwrap();
    let response = answer(&server, other_id, json!({"credential": good})).await;
    assert_eq!(error_code(response).await, (400, "wrong_answer".into()));
    assert_eq!(server.state_of(other_id).await["state"], "issued");
    let used = factor(&server, "bob", &factor_id).await;
    assert!(used["last_used_at"].is_string());

    let metrics = metrics(&server).await;
    assert!(counted(
        &metrics,
        "factors_enrolled_total",
        &[r#"type="webauthn""#]
    ));
    for outcome in ["verified", "wrong_answer"] {
        assert!(
            counted(
                &metrics,
                "factor_verifications_total",
                &[r#"type="webauthn""#, &format!("outcome=\"{outcome}\"")]
            ),
            "{outcome}: {metrics}"
        );
    }
    assert!(counted(
        &metrics,
        "challenges_answered_total",
        &[r#"type="webauthn""#, r#"outcome="verified""#]
    ));
}

/// Counted like the other factor types: enrollments by type, verifications and answers
/// by type and outcome.
async fn metrics(server: &TestServer) -> String {
    server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn counted(metrics: &str, name: &str, labels: &[&str]) -> bool {
    metrics.lines().any(|l| {
        l.starts_with(&format!("{name}{{")) && labels.iter().all(|label| l.contains(label))
    })
}

#[tokio::test]
async fn the_openapi_document_describes_webauthn_enrollment_and_answers() {
    let server = server().await;
    let doc: Value = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    let not_required = |schema: &str, field: &str| {
        let props = &schemas[schema]["properties"];
        assert!(props[field].is_object(), "{schema}.{field} is described");
        let required = schemas[schema]["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !required.contains(&json!(field)),
            "{schema}.{field} is optional"
        );
    };
    // The enrollment and verify bodies are one branch per factor type.
    let branches = |schema: &str| schemas[schema]["oneOf"].as_array().unwrap().clone();
    let enroll = branches("EnrollFactor")
        .into_iter()
        .find(|b| b["properties"]["type"]["const"] == "webauthn")
        .expect("a webauthn enrollment branch");
    assert!(enroll["properties"]["relying_party_id"].is_object());
    assert!(!enroll["required"]
        .as_array()
        .unwrap()
        .contains(&json!("relying_party_id")));
    assert!(
        branches("VerifyFactor")
            .iter()
            .any(|b| b["required"] == json!(["credential"])),
        "a verify branch takes the credential"
    );
    not_required("AnswerRequest", "credential");
    not_required("FactorDto", "webauthn");
    not_required("FactorDto", "registration");
    not_required("ChallengeDto", "webauthn");
    for (schema, fields) in [
        (
            "RegistrationView",
            &["creation_options", "enrollment_url", "expires_at"][..],
        ),
        (
            "WebauthnChallengeView",
            &["relying_party_id", "factor_ids", "request_options"][..],
        ),
        (
            "CredentialView",
            &["id", "sign_count", "backup_eligible", "backup_state"][..],
        ),
    ] {
        let required = schemas[schema]["required"].as_array().unwrap();
        for field in fields {
            assert!(
                required.contains(&json!(field)),
                "{schema}.{field} is required"
            );
        }
    }
    // The challenge create body has a webauthn branch too.
    let create = schemas["CreateChallenge"]["oneOf"].as_array().map(|b| {
        b.iter()
            .any(|b| b.to_string().contains(r#""const":"webauthn""#))
    });
    assert_eq!(create, Some(true), "a webauthn create branch");
}

/// A live challenge's ceremony is in its snapshot and the factor's counter is durable:
/// after a restart (on another port, so another origin for the relying party) the same
/// challenge is answered in the browser, and after another the counter is still there.
#[tokio::test]
async fn a_webauthn_challenge_and_its_counter_survive_restarts() {
    let server = server().await;
    let (factor_id, credentials) = enrolled_in_browser(&server, "frank").await;
    let created = create_webauthn(&server, json!({"type": "webauthn", "user_id": "frank"})).await;
    let id = created["id"].as_str().unwrap().to_string();
    let token = created["actors"][0]["answer_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (settings, data) = server.stop().await;
    let again = |settings: challenge_server::config::Settings, dir: std::path::PathBuf| {
        TestServer::start_on_port(move |s, port| {
            *s = settings;
            s.storage.data_dir = dir;
            s.webauthn.relying_parties[0].origin = format!("http://localhost:{port}");
        })
    };
    let restarted = again(settings.clone(), data.path().to_path_buf()).await;
    let read = restarted.state_of(&id).await;
    assert_eq!(
        read["webauthn"]["request_options"],
        created["webauthn"]["request_options"]
    );
    let url = localhost(&restarted, &format!("/c/{id}?t={token}"));
    let seen = browser(json!({"credentials": credentials,
        "steps": [{"page": url, "click": "Use passkey or security key"}]}))
    .await;
    assert_eq!(seen["steps"][0]["status"], 200, "{seen}");
    assert_eq!(restarted.state_of(&id).await["state"], "verified");
    let used = factor(&restarted, "frank", &factor_id).await;
    let count = used["webauthn"]["credential"]["sign_count"].clone();
    assert!(count.as_u64().unwrap() > 0, "{used}");

    restarted.stop().await;
    let third = again(settings, data.path().to_path_buf()).await;
    let durable = factor(&third, "frank", &factor_id).await;
    assert_eq!(durable["webauthn"]["credential"]["sign_count"], count);
    assert_eq!(durable["last_used_at"], used["last_used_at"]);
    assert_eq!(third.state_of(&id).await["state"], "verified");
}

/// The credentials as browsers serialise them (`PublicKeyCredential.toJSON()`) are
/// taken as they are: an attestation finishes an enrollment over the API, and an
/// assertion answers a challenge.
#[tokio::test]
async fn the_browsers_own_credential_json_enrolls_and_answers_over_the_api() {
    let server = server().await;
    let enrolled = enroll_ok(&server, "gina").await;
    let factor_id = enrolled["id"].as_str().unwrap();
    let origin = localhost(&server, "/healthz");
    let seen = browser(json!({"steps": [
        {"create": origin, "options": enrolled["registration"]["creation_options"]},
    ]}))
    .await;
    let attestation = &seen["steps"][0]["credential"];
    assert!(
        attestation["response"]["attestationObject"].is_string(),
        "{seen}"
    );
    let response = verify(
        &server,
        "acme",
        "gina",
        factor_id,
        json!({"credential": attestation}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let verified: Value = response.json().await.unwrap();
    assert_eq!(verified["status"], "verified");
    let replayed = verify(
        &server,
        "acme",
        "gina",
        factor_id,
        json!({"credential": attestation}),
    )
    .await;
    assert_eq!(
        error_code(replayed).await,
        (409, "factor_already_verified".into())
    );

    let created = create_webauthn(&server, json!({"type": "webauthn", "user_id": "gina"})).await;
    let id = created["id"].as_str().unwrap();
    let seen = browser(json!({"credentials": seen["credentials"], "steps": [
        {"get": origin, "options": created["webauthn"]["request_options"], "to_json": true},
    ]}))
    .await;
    let assertion = &seen["steps"][0]["credential"];
    assert!(assertion["response"]["signature"].is_string(), "{seen}");
    let response = answer(&server, id, json!({"credential": assertion.to_string()})).await;
    assert_eq!(response.status(), 200, "the assertion as a JSON string");
    assert_eq!(server.state_of(id).await["state"], "verified");

    // A second enrollment excludes the credential the user has: the authenticator
    // that holds it refuses to register again.
    let second = enroll_ok(&server, "gina").await;
    let options = &second["registration"]["creation_options"];
    let excluded = &options["publicKey"]["excludeCredentials"];
    assert_eq!(
        excluded[0]["id"], verified["webauthn"]["credential"]["id"],
        "{options}"
    );
    let seen = browser(json!({"credentials": seen["credentials"], "steps": [
        {"create": origin, "options": options},
    ]}))
    .await;
    assert_eq!(seen["steps"][0]["error"], "InvalidStateError", "{seen}");
}

/// A factor deleted after the challenge was created answers nothing: the page's
/// assertion is refused with a readable page, and it costs an attempt.
#[tokio::test]
async fn the_answer_page_refuses_the_passkey_of_a_deleted_factor_readably() {
    let server = server().await;
    let (factor_id, credentials) = enrolled_in_browser(&server, "hank").await;
    let created = create_webauthn(&server, json!({"type": "webauthn", "user_id": "hank"})).await;
    let id = created["id"].as_str().unwrap();
    let deleted = server
        .http
        .delete(server.url(&format!("/api/v1/users/hank/factors/{factor_id}")))
        .bearer_auth(admin(&server, "acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let url = created["actors"][0]["answer_url"].as_str().unwrap();
    let seen = browser(json!({"credentials": credentials,
        "steps": [{"page": url, "click": "Use passkey or security key"}]}))
    .await;
    let step = &seen["steps"][0];
    assert_eq!(step["status"], 400, "{seen}");
    assert!(
        step["text"].as_str().unwrap().contains("not accepted"),
        "{seen}"
    );
    let now = server.state_of(id).await;
    assert_eq!(now["state"], "issued");
    assert_eq!(now["attempts_left"], 4, "an attempt is used");
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
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

/// The enrollment page's token is a capability shown once: the data directory holds
/// only its keyed hash, and the registration state only sealed.
#[tokio::test]
async fn no_page_token_or_plain_ceremony_state_is_in_the_data_directory() {
    let server = server().await;
    let enrolled = enroll_ok(&server, "ivy").await;
    let page = enrolled["registration"]["enrollment_url"].as_str().unwrap();
    let token = page.rsplit_once("t=").unwrap().1.to_string();
    let challenge = enrolled["registration"]["creation_options"]["publicKey"]["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, data) = server.stop().await;
    let scanned = files(data.path());
    let mut total = 0;
    for path in scanned {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "page token in {path:?}"
        );
        // The options (with their challenge) are kept in clear for the page; the
        // crate's state names the challenge too, and is sealed: in each file (sled's,
        // or the write-ahead log's, which holds the same record) the challenge appears
        // once, in the options, and not a second time in a plain state.
        let seen = bytes
            .windows(challenge.len())
            .filter(|w| *w == challenge.as_bytes())
            .count();
        assert!(seen <= 1, "the challenge {seen} times in {path:?}");
        total += seen;
    }
    assert!(total >= 1, "the options are stored");
}

/// A cloned authenticator: two copies of one credential with the same counter. The
/// first assertion moves the stored counter; the clone's, valid for its own challenge
/// and ahead of the counter that challenge started from, does not move it forward and
/// is refused, costing an attempt.
#[tokio::test]
async fn a_counter_that_does_not_move_forward_is_refused() {
    let server = server().await;
    let (factor_id, credentials) = enrolled_in_browser(&server, "jane").await;
    let body = json!({"type": "webauthn", "user_id": "jane"});
    let first = create_webauthn(&server, body.clone()).await;
    let second = create_webauthn(&server, body).await;
    let origin = localhost(&server, "/healthz");
    let original = browser(json!({"credentials": credentials, "steps": [
        {"get": origin, "options": first["webauthn"]["request_options"]},
    ]}))
    .await;
    let clone = browser(json!({"credentials": credentials, "steps": [
        {"get": origin, "options": second["webauthn"]["request_options"]},
    ]}))
    .await;
    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();
    let response = answer(
        &server,
        first_id,
        json!({"credential": original["steps"][0]["credential"]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let counter =
        factor(&server, "jane", &factor_id).await["webauthn"]["credential"]["sign_count"].clone();

    let response = answer(
        &server,
        second_id,
        json!({"credential": clone["steps"][0]["credential"]}),
    )
    .await;
    assert_eq!(error_code(response).await, (400, "wrong_answer".into()));
    let now = server.state_of(second_id).await;
    assert_eq!(now["state"], "issued");
    assert_eq!(now["attempts_left"], 4);
    let after = factor(&server, "jane", &factor_id).await;
    assert_eq!(
        after["webauthn"]["credential"]["sign_count"], counter,
        "unchanged"
    );
}
