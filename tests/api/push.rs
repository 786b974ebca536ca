//! Push factors and `push` challenges with a real P-256 key generated here: enrollment
//! and its signed proof, the signed notification the push gateway (a real local HTTP
//! receiver) gets once the create is durable, the device's own JWT, its list and its
//! signed approve / deny — and every refusal with its status and code, changing nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use challenge_server::delivery::webhook;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use serde_json::{json, Value};

use crate::helpers::{error_code, TestServer, ALL_SCOPES};
use crate::sinks::HttpSink;

const ENROLLMENT: &str =
    "challenge:enrollment:get challenge:enrollment:post challenge:enrollment:delete";

/// A P-384 key's SPKI DER, base64 (openssl ecparam -name secp384r1).
const P384_SPKI: &str = "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE4WM1yCW2ZRuJoRc24BJVGntMlYjtHrYzc3i+NwLpwiYZnntZVjWkovBGDE2AnD5vmOQsQcbUJfq+yGQ0RnTlS2hxIzeDRCFxWmn1Tws/+xWzD4rBcLUo5yTbmPJE4uP0";
/// An Ed25519 key's SPKI DER, base64.
const ED25519_SPKI: &str = "MCowBQYDK2VwAyEAq+EPJR3V15yksHo3v5cuhDfXgXsC4FlEqoqoe9DZ1k4=";

fn admin(server: &TestServer) -> String {
    server.token("acme", &format!("{ALL_SCOPES} {ENROLLMENT}"))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A device: its own key, and once enrolled its factor id.
pub(crate) struct Device {
    key: SigningKey,
    pub(crate) factor_id: String,
}

impl Device {
    fn key() -> SigningKey {
        SigningKey::random(&mut rand::rngs::OsRng)
    }

    fn spki(key: &SigningKey) -> String {
        STANDARD.encode(key.verifying_key().to_public_key_der().unwrap().as_bytes())
    }

    /// base64url of the DER ECDSA-P256-SHA256 signature of `text`.
    pub(crate) fn sign(&self, text: &str) -> String {
        sign(&self.key, text)
    }

    /// An ES256 JWT with `sub` = the factor id, valid for `lifetime` seconds.
    pub(crate) fn jwt(&self, lifetime: i64) -> String {
        jwt(&self.key, &self.factor_id, unix_now() + lifetime)
    }
}

fn sign(key: &SigningKey, text: &str) -> String {
    let signature: Signature = key.sign(text.as_bytes());
    URL_SAFE_NO_PAD.encode(signature.to_der().as_bytes())
}

fn jwt(key: &SigningKey, sub: &str, exp: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"JWT"}"#);
    let claims =
        URL_SAFE_NO_PAD.encode(json!({"sub": sub, "exp": exp, "iat": unix_now()}).to_string());
    let signed = format!("{header}.{claims}");
    let signature: Signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

async fn enroll(server: &TestServer, user: &str, body: Value) -> reqwest::Response {
    server
        .post(
            Some(&admin(server)),
            &format!("/api/v1/users/{user}/factors"),
            body,
        )
        .await
}

async fn verify(server: &TestServer, user: &str, id: &str, signature: &str) -> reqwest::Response {
    server
        .post(
            Some(&admin(server)),
            &format!("/api/v1/users/{user}/factors/{id}/verify"),
            json!({ "signature": signature }),
        )
        .await
}

/// A device enrolled for `user` and verified.
pub(crate) async fn enrolled_device(server: &TestServer, user: &str, platform: &str) -> Device {
    let key = Device::key();
    let response = enroll(
        server,
        user,
        json!({"type": "push", "friendly_name": "phone", "public_key": Device::spki(&key),
               "notification": {"platform": platform}}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let device = Device {
        key,
        factor_id: body["id"].as_str().unwrap().to_string(),
    };
    let proof = device.sign(&format!("verify.{}", device.factor_id));
    let response = verify(server, user, &device.factor_id, &proof).await;
    assert_eq!(response.status(), 200);
    device
}

fn push_body(user: &str, factor_id: &str) -> Value {
    json!({"type": "push", "user_id": user, "factor_id": factor_id,
           "details": {"message": "Approve login from Ottawa?",
                       "fields": [{"label": "IP", "value": "203.0.113.7"}]},
           "hidden_details": {"session": "s-1"}})
}

async fn device_list(server: &TestServer, token: &str) -> reqwest::Response {
    server
        .http
        .get(server.url("/api/v1/devices/challenges?state=issued"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn device_answer(
    server: &TestServer,
    token: &str,
    id: &str,
    decision: &str,
    signature: &str,
) -> reqwest::Response {
    server
        .post(
            Some(token),
            &format!("/api/v1/devices/challenges/{id}/answer"),
            json!({"decision": decision, "signature": signature}),
        )
        .await
}

/// The device's open challenges, as it lists them.
pub(crate) async fn open_challenges(server: &TestServer, device: &Device) -> Vec<Value> {
    let response = device_list(server, &device.jwt(60)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["challenges"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_device_enrolls_its_p256_key_and_proves_it_holds_it() {
    let server = TestServer::start().await;
    let key = Device::key();
    let response = enroll(
        &server,
        "alice",
        json!({"type": "push", "friendly_name": "Pixel", "public_key": Device::spki(&key),
               "notification": {"platform": "none"}}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unverified");
    assert_eq!(body["type"], "push");
    assert_eq!(body["push"]["platform"], "none");
    assert!(body["push"]["public_key_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("SHA256:"));
    assert!(body.get("secret").is_none() && body.get("totp").is_none());
    let device = Device {
        key,
        factor_id: body["id"].as_str().unwrap().to_string(),
    };

    // Signed by another key, or over another text: refused, still unverified.
    let stranger = Device::key();
    let forged = sign(&stranger, &format!("verify.{}", device.factor_id));
    let wrong_text = device.sign("verify.fac_other");
    for signature in [forged.as_str(), wrong_text.as_str(), "bm90IGEgc2lnbmF0dXJl"] {
        let response = verify(&server, "alice", &device.factor_id, signature).await;
        assert_eq!(error_code(response).await, (400, "wrong_answer".into()));
    }
    let shown: Value = server
        .http
        .get(server.url(&format!("/api/v1/users/alice/factors/{}", device.factor_id)))
        .bearer_auth(admin(&server))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "unverified");

    let proof = device.sign(&format!("verify.{}", device.factor_id));
    let response = verify(&server, "alice", &device.factor_id, &proof).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "verified");
    // A TOTP code is not a push factor's proof.
    let response = server
        .post(
            Some(&admin(&server)),
            &format!("/api/v1/users/alice/factors/{}/verify", device.factor_id),
            json!({"code": "123456"}),
        )
        .await;
    assert_eq!(
        error_code(response).await,
        (409, "factor_already_verified".into())
    );
}

#[tokio::test]
async fn a_push_challenge_reaches_the_gateway_signed_and_the_device_approves_it() {
    let gateway = HttpSink::start();
    let url = gateway.url("/push");
    let server = TestServer::start_with(|s| {
        s.actions.allow_private = true;
        s.push.gateway_url = url;
    })
    .await;
    let device = enrolled_device(&server, "alice", "webhook").await;

    let response = server
        .create(&admin(&server), push_body("alice", &device.factor_id))
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["state"], "issued");
    assert!(created["actors"][0].get("answer_token").is_none());

    // The gateway hears of it, signed as webhooks are.
    let requests = gateway.wait_for(1).await;
    assert_eq!(requests[0].path, "/push");
    let notified: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(notified["event"], "push.challenge.created");
    assert_eq!(notified["id"], id);
    assert_eq!(notified["factor_id"], device.factor_id.as_str());
    assert_eq!(notified["details"]["message"], "Approve login from Ottawa?");
    let secret: Value = server
        .http
        .get(server.url("/api/v1/webhooks/secret"))
        .bearer_auth(server.token("acme", "challenge:webhook:get"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = requests[0].header("x-challenge-signature").unwrap();
    assert!(webhook::verify(
        secret["secret"].as_str().unwrap().as_bytes(),
        header,
        &requests[0].body,
        unix_now(),
        300
    ));

    // The device lists it, with the text it signs.
    let open = open_challenges(&server, &device).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], id);
    let payload = open[0]["signing_payload"].as_str().unwrap();
    assert_eq!(notified["signing_payload"], payload);
    // The details as served: compact JSON, `message` then `fields`.
    let expected = format!(
        "challenge-server.push.v1\n{id}\n{}\n{}\n{}",
        device.factor_id,
        open[0]["expires_at"].as_str().unwrap(),
        r#"{"message":"Approve login from Ottawa?","fields":[{"label":"IP","value":"203.0.113.7"}]}"#,
    );
    assert_eq!(payload, expected);

    let signature = device.sign(&format!("{payload}.approved"));
    let response = device_answer(&server, &device.jwt(60), id, "approved", &signature).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["state"], "verified");
    let shown = server.state_of(id).await;
    assert_eq!(shown["state"], "verified");
    assert_eq!(shown["hidden_details"]["session"], "s-1");

    // Used: the same signed answer again is refused, and nothing changes.
    let again = device_answer(&server, &device.jwt(60), id, "approved", &signature).await;
    assert_eq!(error_code(again).await, (409, "already_answered".into()));
    assert_eq!(
        server.state_of(id).await["answered_at"],
        shown["answered_at"]
    );
    assert!(open_challenges(&server, &device).await.is_empty());
    // The factor records its use.
    let factor: Value = server
        .http
        .get(server.url(&format!("/api/v1/users/alice/factors/{}", device.factor_id)))
        .bearer_auth(admin(&server))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(factor["last_used_at"].is_string());

    // Counted by type and outcome.
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted = |name: &str, labels: &[&str]| {
        metrics.lines().any(|l| {
            l.starts_with(&format!("{name}{{")) && labels.iter().all(|label| l.contains(label))
        })
    };
    assert!(counted("factors_enrolled_total", &[r#"type="push""#]));
    assert!(counted(
        "factor_verifications_total",
        &[r#"type="push""#, r#"outcome="verified""#]
    ));
    assert!(counted(
        "challenges_answered_total",
        &[r#"type="push""#, r#"outcome="verified""#]
    ));
}

#[tokio::test]
async fn of_concurrent_signed_answers_exactly_one_wins() {
    let server = TestServer::start().await;
    let device = enrolled_device(&server, "alice", "none").await;
    let created = server
        .create(&admin(&server), push_body("alice", &device.factor_id))
        .await;
    assert_eq!(created.status(), 201);
    let open = open_challenges(&server, &device).await;
    let id = open[0]["id"].as_str().unwrap().to_string();
    let payload = open[0]["signing_payload"].as_str().unwrap().to_string();
    let token = device.jwt(60);
    let answers = (0..10).map(|i| {
        let decision = if i % 2 == 0 { "approved" } else { "denied" };
        let signature = device.sign(&format!("{payload}.{decision}"));
        let (server, token, id) = (&server, &token, &id);
        async move {
            let response = device_answer(server, token, id, decision, &signature).await;
            response.status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(answers).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_device_that_denies_declines_the_challenge() {
    let server = TestServer::start().await;
    let device = enrolled_device(&server, "alice", "none").await;
    let created = server
        .create(&admin(&server), push_body("alice", &device.factor_id))
        .await;
    assert_eq!(created.status(), 201);
    let open = open_challenges(&server, &device).await;
    let (id, payload) = (
        open[0]["id"].as_str().unwrap(),
        open[0]["signing_payload"].as_str().unwrap(),
    );
    let signature = device.sign(&format!("{payload}.denied"));
    let response = device_answer(&server, &device.jwt(60), id, "denied", &signature).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["state"], "declined");
    assert_eq!(server.state_of(id).await["state"], "declined");
}

#[tokio::test]
async fn a_bad_signature_another_device_or_a_bad_token_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    let device = enrolled_device(&server, "alice", "none").await;
    let other = enrolled_device(&server, "alice", "none").await;
    let created: Value = server
        .create(&admin(&server), push_body("alice", &device.factor_id))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let payload = open_challenges(&server, &device).await[0]["signing_payload"]
        .as_str()
        .unwrap()
        .to_string();
    let approve = device.sign(&format!("{payload}.approved"));

    // A signature of the other decision, or by another key.
    let denied = device.sign(&format!("{payload}.denied"));
    let by_other = other.sign(&format!("{payload}.approved"));
    for signature in [denied.as_str(), by_other.as_str(), "AAAA"] {
        let response = device_answer(&server, &device.jwt(60), id, "approved", signature).await;
        assert_eq!(
            error_code(response).await,
            (400, "invalid_signature".into())
        );
    }
    // Another device, even of the same user, neither sees nor answers it.
    assert!(open_challenges(&server, &other).await.is_empty());
    let response = device_answer(&server, &other.jwt(60), id, "approved", &approve).await;
    assert_eq!(
        error_code(response).await,
        (404, "challenge_not_found".into())
    );
    // Tokens: expired, too long-lived, signed by a stranger, none at all.
    let stranger = Device::key();
    let cases = [
        (device.jwt(-5), "device_token_expired"),
        (device.jwt(330), "device_token_lifetime_too_long"),
        (
            jwt(&stranger, &device.factor_id, unix_now() + 60),
            "invalid_device_token",
        ),
        ("not.a.jwt".to_string(), "invalid_device_token"),
    ];
    for (token, code) in cases {
        let response = device_answer(&server, &token, id, "approved", &approve).await;
        assert_eq!(error_code(response).await, (401, code.into()), "{code}");
        let response = device_list(&server, &token).await;
        assert_eq!(error_code(response).await, (401, code.into()), "{code}");
    }
    let response = server
        .http
        .get(server.url("/api/v1/devices/challenges"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (401, "unauthorized".into()));
    // A service's token answers nothing: only the device does.
    let response = server
        .post(
            Some(&admin(&server)),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"allowed": true}),
        )
        .await;
    assert_eq!(
        error_code(response).await,
        (400, "device_answer_required".into())
    );
    let shown = server.state_of(id).await;
    assert_eq!(shown["state"], "issued");
    assert_eq!(shown["attempts_left"], created["attempts_left"]);

    // The right device and signature still answer.
    let response = device_answer(&server, &device.jwt(60), id, "approved", &approve).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn bad_enrollments_and_bad_push_challenges_are_refused_with_nothing_stored() {
    let server = TestServer::start().await;
    let rsa_pem = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa_public.pem"),
    )
    .unwrap();
    let rsa_spki: String = rsa_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let key = Device::key();
    let enrollments = [
        (
            json!({"type": "push", "public_key": P384_SPKI}),
            "invalid_public_key",
            "public_key",
        ),
        (
            json!({"type": "push", "public_key": ED25519_SPKI}),
            "invalid_public_key",
            "public_key",
        ),
        (
            json!({"type": "push", "public_key": rsa_spki}),
            "invalid_public_key",
            "public_key",
        ),
        (
            json!({"type": "push", "public_key": "%%%"}),
            "invalid_public_key",
            "public_key",
        ),
        (json!({"type": "push"}), "invalid_field", "public_key"),
        (
            json!({"type": "push", "public_key": Device::spki(&key), "notification": {"platform": "apns"}}),
            "invalid_field",
            "notification.platform",
        ),
        (
            json!({"type": "push", "public_key": Device::spki(&key), "digits": 6}),
            "invalid_field",
            "digits",
        ),
    ];
    for (body, code, field) in enrollments {
        let response = enroll(&server, "bob", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {error}"
        );
    }
    let listed: Value = server
        .http
        .get(server.url("/api/v1/users/bob/factors"))
        .bearer_auth(admin(&server))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["factors"], json!([]));

    let device = enrolled_device(&server, "alice", "none").await;
    let unverified_key = Device::key();
    let unverified: Value = enroll(
        &server,
        "alice",
        json!({"type": "push", "public_key": Device::spki(&unverified_key)}),
    )
    .await
    .json()
    .await
    .unwrap();
    let deleted = enrolled_device(&server, "alice", "none").await;
    let response = server
        .http
        .delete(server.url(&format!(
            "/api/v1/users/alice/factors/{}",
            deleted.factor_id
        )))
        .bearer_auth(admin(&server))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = push_body("alice", &device.factor_id);
        change(&mut body);
        body
    };
    let fields: Vec<Value> = (0..21)
        .map(|i| json!({"label": format!("l{i}"), "value": "v"}))
        .collect();
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            with(&|b| b["details"]["message"] = json!("m".repeat(257))),
            400,
            "field_too_long",
            "details.message",
        ),
        (
            with(&|b| b["details"] = json!({"fields": []})),
            400,
            "invalid_field",
            "details.message",
        ),
        (
            with(&|b| b["details"]["fields"] = json!(fields)),
            400,
            "too_many_items",
            "details.fields",
        ),
        (
            with(&|b| b["details"]["fields"] = json!([{"label": "l".repeat(37), "value": "v"}])),
            400,
            "field_too_long",
            "details.fields[0].label",
        ),
        (
            with(&|b| b["details"]["fields"] = json!([{"label": "l", "value": "v".repeat(129)}])),
            400,
            "field_too_long",
            "details.fields[0].value",
        ),
        (
            with(&|b| b["hidden_details"] = json!({"k": "x".repeat(1020)})),
            400,
            "field_too_long",
            "hidden_details",
        ),
        (
            with(&|b| b["type"] = json!("pushy")),
            400,
            "invalid_field",
            "",
        ),
        (
            with(&|b| b["factor_id"] = unverified["id"].clone()),
            409,
            "factor_not_verified",
            "",
        ),
        (
            with(&|b| b["factor_id"] = json!(deleted.factor_id)),
            404,
            "factor_not_found",
            "",
        ),
        (
            with(&|b| b["user_id"] = json!("bob")),
            404,
            "factor_not_found",
            "",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("factor_id");
            }),
            400,
            "invalid_field",
            "factor_id",
        ),
    ];
    for (body, status, code, field) in cases {
        let response = server.create(&admin(&server), body.clone()).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {error}"
        );
    }
    let listed: Value = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(admin(&server))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["challenges"], json!([]));
    assert!(open_challenges(&server, &device).await.is_empty());
    // An unverified device's token does not authenticate yet.
    let token = jwt(
        &unverified_key,
        unverified["id"].as_str().unwrap(),
        unix_now() + 60,
    );
    let response = device_list(&server, &token).await;
    assert_eq!(
        error_code(response).await,
        (401, "device_not_verified".into())
    );
    // A deleted factor's token no longer authenticates.
    let response = device_list(&server, &deleted.jwt(60)).await;
    assert_eq!(
        error_code(response).await,
        (401, "invalid_device_token".into())
    );
}

#[tokio::test]
async fn a_policy_may_name_push() {
    let server = TestServer::start().await;
    let device = enrolled_device(&server, "alice", "none").await;
    let response = server
        .post(
            Some(&server.token("acme", "challenge:policy:post")),
            "/api/v1/policies",
            json!({"alias": "approve-login", "type": "push", "ttl_seconds": 120}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let mut body = push_body("alice", &device.factor_id);
    body.as_object_mut().unwrap().remove("type");
    body["policy"] = json!("approve-login");
    let response = server.create(&admin(&server), body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["type"], "push");
    assert_eq!(created["policy"]["alias"], "approve-login");
    assert_eq!(open_challenges(&server, &device).await.len(), 1);
}

#[tokio::test]
async fn after_a_restart_the_device_still_authenticates_and_a_used_challenge_stays_used() {
    let server = TestServer::start().await;
    let device = enrolled_device(&server, "alice", "none").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let created: Value = server
            .create(&admin(&server), push_body("alice", &device.factor_id))
            .await
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    let open = open_challenges(&server, &device).await;
    let first = open.iter().find(|c| c["id"] == ids[0].as_str()).unwrap();
    let payload = first["signing_payload"].as_str().unwrap().to_string();
    let approve = device.sign(&format!("{payload}.approved"));
    let response = device_answer(&server, &device.jwt(60), &ids[0], "approved", &approve).await;
    assert_eq!(response.status(), 200);

    let (settings, data) = server.stop().await;
    let restarted = TestServer::start_with(|s| {
        *s = settings.clone();
        s.storage.data_dir = data.path().to_path_buf();
    })
    .await;
    let again = device_answer(&restarted, &device.jwt(60), &ids[0], "approved", &approve).await;
    assert_eq!(error_code(again).await, (409, "already_answered".into()));
    assert_eq!(restarted.state_of(&ids[0]).await["state"], "verified");
    let open = open_challenges(&restarted, &device).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], ids[1].as_str());
    let payload = open[0]["signing_payload"].as_str().unwrap();
    let deny = device.sign(&format!("{payload}.denied"));
    let response = device_answer(&restarted, &device.jwt(60), &ids[1], "denied", &deny).await;
    assert_eq!(response.json::<Value>().await.unwrap()["state"], "declined");
}

#[tokio::test]
async fn a_device_pages_through_its_challenges() {
    let server = TestServer::start().await;
    let device = enrolled_device(&server, "alice", "none").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let created: Value = server
            .create(&admin(&server), push_body("alice", &device.factor_id))
            .await
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    for _ in 0..10 {
        pages += 1;
        let mut path = "/api/v1/devices/challenges?state=issued&page_size=2".to_string();
        if let Some(t) = &token {
            path.push_str(&format!("&page_token={t}"));
        }
        let page: Value = server
            .http
            .get(server.url(&path))
            .bearer_auth(device.jwt(60))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let challenges = page["challenges"].as_array().unwrap();
        assert!(challenges.len() <= 2, "{page}");
        for c in challenges {
            seen.push(c["id"].as_str().unwrap().to_string());
        }
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    // In id order (of the id's bytes, not of its text): each once, across two pages.
    assert_eq!(pages, 2);
    seen.sort();
    assert_eq!(seen, ids);
    let response = server
        .http
        .get(server.url("/api/v1/devices/challenges?state=nope"))
        .bearer_auth(device.jwt(60))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (400, "invalid_query".into()));
}

#[tokio::test]
async fn a_device_lists_its_challenges_without_walking_its_tenant() {
    // A list examines at most two of the tenant's challenges; a device's list must not.
    let server = TestServer::start_with(|s| s.limits.list_scan_budget = 2).await;
    let device = enrolled_device(&server, "alice", "none").await;
    for user in ["bob", "carol", "dave", "erin", "frank"] {
        server
            .create_ok(json!({"type": "token", "user_id": user}))
            .await;
    }
    let created: Value = server
        .create(&admin(&server), push_body("alice", &device.factor_id))
        .await
        .json()
        .await
        .unwrap();
    let page: Value = device_list(&server, &device.jwt(60))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = page["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, vec![created["id"].as_str().unwrap()]);
    assert!(page["next_page_token"].is_null(), "{page}");
}
