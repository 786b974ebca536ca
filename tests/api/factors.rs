//! Enrolled factors and `totp` challenges: enrollment and its verification, the routes'
//! tenant and user sealing and scopes, every bad input refused with nothing stored, the
//! replay rule (one accepted code per time step per factor, across challenges,
//! concurrent answers and a restart), and no seed anywhere in the data directory.
//! Codes are computed here with `totp-rs`, independently of the server.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::helpers::{error_code, TestServer, ALL_SCOPES};

const ENROLLMENT: &str =
    "challenge:enrollment:get challenge:enrollment:post challenge:enrollment:delete";

fn admin(server: &TestServer, tenant: &str) -> String {
    server.token(tenant, &format!("{ALL_SCOPES} {ENROLLMENT}"))
}

fn factors_path(user: &str) -> String {
    format!("/api/v1/users/{user}/factors")
}

async fn enroll(server: &TestServer, token: &str, user: &str, body: Value) -> reqwest::Response {
    server
        .http
        .post(server.url(&factors_path(user)))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn enroll_ok(server: &TestServer, user: &str, body: Value) -> Value {
    let response = enroll(server, &admin(server, "acme"), user, body).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn verify(
    server: &TestServer,
    token: &str,
    user: &str,
    id: &str,
    code: &str,
) -> reqwest::Response {
    server
        .post(
            Some(token),
            &format!("{}/{id}/verify", factors_path(user)),
            json!({ "code": code }),
        )
        .await
}

async fn get_factor(server: &TestServer, token: &str, user: &str, id: &str) -> reqwest::Response {
    server
        .http
        .get(server.url(&format!("{}/{id}", factors_path(user))))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn delete_factor(
    server: &TestServer,
    token: &str,
    user: &str,
    id: &str,
) -> reqwest::Response {
    server
        .http
        .delete(server.url(&format!("{}/{id}", factors_path(user))))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn list(server: &TestServer, token: &str, user: &str, query: &str) -> reqwest::Response {
    server
        .http
        .get(server.url(&format!("{}{query}", factors_path(user))))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// An authenticator for an enrolled factor, built from what the enrollment returned.
pub(crate) struct Authenticator {
    totp: TOTP,
    period: u64,
}

impl Authenticator {
    fn of(enrolled: &Value) -> Self {
        let algorithm = match enrolled["totp"]["algorithm"].as_str().unwrap() {
            "sha1" => Algorithm::SHA1,
            "sha256" => Algorithm::SHA256,
            _ => Algorithm::SHA512,
        };
        let digits = enrolled["totp"]["digits"].as_u64().unwrap() as usize;
        let period = enrolled["totp"]["period_seconds"].as_u64().unwrap();
        let seed = Secret::Encoded(enrolled["secret"].as_str().unwrap().to_string())
            .to_bytes()
            .unwrap();
        Authenticator {
            totp: TOTP::new_unchecked(algorithm, digits, 0, period, seed, None, String::new()),
            period,
        }
    }

    fn step_now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / self.period
    }

    pub(crate) fn code(&self, step: u64) -> String {
        self.totp.generate(step * self.period)
    }

    /// A code of the same length that is none of the steps around `step`.
    fn wrong(&self, step: u64) -> String {
        let window: Vec<String> = (step.saturating_sub(3)..=step + 3)
            .map(|s| self.code(s))
            .collect();
        let digits = self.totp.digits;
        (0u64..)
            .map(|n| format!("{:0digits$}", n))
            .find(|c| !window.contains(c))
            .unwrap()
    }
}

/// Enrolls a TOTP factor for `user` and verifies it with the code of the step now;
/// returns the factor, its authenticator and the step its verification used.
pub(crate) async fn verified_factor(
    server: &TestServer,
    user: &str,
    body: Value,
) -> (Value, Authenticator, u64) {
    let enrolled = enroll_ok(server, user, body).await;
    let authenticator = Authenticator::of(&enrolled);
    let step = authenticator.step_now();
    let id = enrolled["id"].as_str().unwrap();
    let response = verify(
        server,
        &admin(server, "acme"),
        user,
        id,
        &authenticator.code(step),
    )
    .await;
    assert_eq!(response.status(), 200);
    (enrolled, authenticator, step)
}

async fn create_totp(server: &TestServer, user: &str, factor_id: &str) -> reqwest::Response {
    server
        .create(
            &admin(server, "acme"),
            json!({"type": "totp", "user_id": user, "factor_id": factor_id}),
        )
        .await
}

async fn answer(server: &TestServer, id: &str, code: &str) -> reqwest::Response {
    server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({ "code": code }),
        )
        .await
}

#[tokio::test]
async fn an_enrollment_shows_its_secret_once_and_a_current_code_verifies_it() {
    let server = TestServer::start().await;
    let token = admin(&server, "acme");
    let enrolled = enroll_ok(
        &server,
        "alice",
        json!({"type": "totp", "friendly_name": "Alice's phone", "issuer": "Acme Bank"}),
    )
    .await;
    let id = enrolled["id"].as_str().unwrap();
    assert!(id.starts_with("fac_") && id.len() == 4 + 22, "{id}");
    assert_eq!(enrolled["type"], "totp");
    assert_eq!(enrolled["status"], "unverified");
    assert_eq!(enrolled["friendly_name"], "Alice's phone");
    assert_eq!(enrolled["last_used_at"], Value::Null);
    assert_eq!(
        enrolled["totp"],
        json!({"algorithm": "sha1", "digits": 6, "period_seconds": 30, "skew_steps": 1})
    );
    let secret = enrolled["secret"].as_str().unwrap();
    let uri = enrolled["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Acme%20Bank:alice?"),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={secret}")) && uri.contains("issuer=Acme%20Bank"));
    let parsed = TOTP::from_url_unchecked(uri).unwrap();
    assert_eq!(parsed.get_secret_base32(), secret);
    let svg = enrolled["qr_svg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));

    let read: Value = get_factor(&server, &token, "alice", id)
        .await
        .json()
        .await
        .unwrap();
    for hidden in ["secret", "otpauth_uri", "qr_svg"] {
        assert!(read.get(hidden).is_none(), "{hidden} is shown again");
    }
    assert_eq!(read["status"], "unverified");

    let authenticator = Authenticator::of(&enrolled);
    let step = authenticator.step_now();
    let wrong = verify(&server, &token, "alice", id, &authenticator.wrong(step)).await;
    assert_eq!(error_code(wrong).await, (400, "wrong_answer".into()));
    let read: Value = get_factor(&server, &token, "alice", id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "unverified");

    let right = verify(&server, &token, "alice", id, &authenticator.code(step)).await;
    assert_eq!(right.status(), 200);
    let verified: Value = right.json().await.unwrap();
    assert_eq!(verified["status"], "verified");
    assert!(verified.get("secret").is_none());
    let again = verify(&server, &token, "alice", id, &authenticator.code(step + 1)).await;
    assert_eq!(
        error_code(again).await,
        (409, "factor_already_verified".into())
    );
}

#[tokio::test]
async fn per_factor_parameters_override_the_defaults() {
    let server = TestServer::start().await;
    let (enrolled, _, _) = verified_factor(
        &server,
        "bob",
        json!({"type": "totp", "algorithm": "sha512", "digits": 8, "period_seconds": 60, "skew_steps": 2}),
    )
    .await;
    assert_eq!(
        enrolled["totp"],
        json!({"algorithm": "sha512", "digits": 8, "period_seconds": 60, "skew_steps": 2})
    );
    let uri = enrolled["otpauth_uri"].as_str().unwrap();
    for part in [
        "algorithm=SHA512",
        "digits=8",
        "period=60",
        "issuer=challenge-server",
    ] {
        assert!(uri.contains(part), "{part} in {uri}");
    }
    assert_eq!(enrolled["friendly_name"], "totp");
}

#[tokio::test]
async fn a_users_factors_are_listed_a_page_at_a_time() {
    let server = TestServer::start().await;
    let token = admin(&server, "acme");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let f = enroll_ok(&server, "carol", json!({"type": "totp"})).await;
        ids.push(f["id"].as_str().unwrap().to_string());
    }
    enroll_ok(&server, "dave", json!({"type": "totp"})).await;
    let first: Value = list(&server, &token, "carol", "?page_size=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["factors"].as_array().unwrap().len(), 2);
    let next = first["next_page_token"].as_str().unwrap();
    let second: Value = list(
        &server,
        &token,
        "carol",
        &format!("?page_size=2&page_token={next}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(second["next_page_token"], Value::Null);
    let mut listed: Vec<String> = first["factors"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["factors"].as_array().unwrap())
        .map(|f| {
            assert!(f.get("secret").is_none());
            assert_eq!(f["user_id"], "carol");
            f["id"].as_str().unwrap().to_string()
        })
        .collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    for bad in [
        "?page_size=0",
        "?page_size=1001",
        "?page_token=nope",
        "?colour=red",
    ] {
        let response = list(&server, &token, "carol", bad).await;
        assert_eq!(
            error_code(response).await,
            (400, "invalid_query".into()),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_deleted_factor_is_gone_and_backs_no_challenge() {
    let server = TestServer::start().await;
    let token = admin(&server, "acme");
    let (enrolled, authenticator, step) =
        verified_factor(&server, "erin", json!({"type": "totp"})).await;
    let id = enrolled["id"].as_str().unwrap();
    let challenge: Value = create_totp(&server, "erin", id).await.json().await.unwrap();

    let deleted = delete_factor(&server, &token, "erin", id).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        error_code(get_factor(&server, &token, "erin", id).await).await,
        (404, "factor_not_found".into())
    );
    assert_eq!(
        error_code(delete_factor(&server, &token, "erin", id).await).await,
        (404, "factor_not_found".into())
    );
    assert_eq!(
        error_code(create_totp(&server, "erin", id).await).await,
        (404, "factor_not_found".into())
    );
    // A challenge created before the delete accepts no code of it any more.
    let refused = answer(
        &server,
        challenge["id"].as_str().unwrap(),
        &authenticator.code(step + 1),
    )
    .await;
    assert_eq!(error_code(refused).await, (400, "wrong_answer".into()));
}

#[tokio::test]
async fn another_tenants_or_users_factor_is_not_found() {
    let server = TestServer::start().await;
    let (enrolled, authenticator, step) =
        verified_factor(&server, "frank", json!({"type": "totp"})).await;
    let id = enrolled["id"].as_str().unwrap();
    let globex = admin(&server, "globex");
    let code = authenticator.code(step + 1);
    for response in [
        get_factor(&server, &globex, "frank", id).await,
        verify(&server, &globex, "frank", id, &code).await,
        delete_factor(&server, &globex, "frank", id).await,
        get_factor(&server, &admin(&server, "acme"), "grace", id).await,
        delete_factor(&server, &admin(&server, "acme"), "grace", id).await,
    ] {
        assert_eq!(error_code(response).await, (404, "factor_not_found".into()));
    }
    let theirs: Value = list(&server, &globex, "frank", "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["factors"], json!([]));
    let other_user = server
        .create(
            &admin(&server, "acme"),
            json!({"type": "totp", "user_id": "grace", "factor_id": id}),
        )
        .await;
    assert_eq!(
        error_code(other_user).await,
        (404, "factor_not_found".into())
    );
    let other_tenant = server
        .create(
            &globex,
            json!({"type": "totp", "user_id": "frank", "factor_id": id}),
        )
        .await;
    assert_eq!(
        error_code(other_tenant).await,
        (404, "factor_not_found".into())
    );
    // Still there, untouched, for its own tenant.
    let read: Value = get_factor(&server, &admin(&server, "acme"), "frank", id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "verified");
}

#[tokio::test]
async fn each_route_needs_its_enrollment_scope() {
    let server = TestServer::start().await;
    let enrolled = enroll_ok(&server, "heidi", json!({"type": "totp"})).await;
    let id = enrolled["id"].as_str().unwrap();
    let everything_but = |missing: &str| {
        let all = format!("{ALL_SCOPES} {ENROLLMENT}");
        let scopes: Vec<&str> = all.split(' ').filter(|s| *s != missing).collect();
        server.token("acme", &scopes.join(" "))
    };
    let no_get = everything_but("challenge:enrollment:get");
    let no_post = everything_but("challenge:enrollment:post");
    let no_delete = everything_but("challenge:enrollment:delete");
    for response in [
        get_factor(&server, &no_get, "heidi", id).await,
        list(&server, &no_get, "heidi", "").await,
        enroll(&server, &no_post, "heidi", json!({"type": "totp"})).await,
        verify(&server, &no_post, "heidi", id, "123456").await,
        delete_factor(&server, &no_delete, "heidi", id).await,
    ] {
        assert_eq!(error_code(response).await, (403, "forbidden".into()));
    }
    let unauthenticated = server
        .http
        .get(server.url(&factors_path("heidi")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(unauthenticated).await,
        (401, "unauthorized".into())
    );
    let listed: Value = list(&server, &admin(&server, "acme"), "heidi", "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["factors"].as_array().unwrap().len(),
        1,
        "nothing enrolled without the scope"
    );
    assert_eq!(listed["factors"][0]["status"], "unverified");
}

#[tokio::test]
async fn every_bad_enrollment_is_refused_with_its_code_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let token = admin(&server, "acme");
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!({}), 400, "invalid_field", "type"),
        (json!({"type": "sms"}), 400, "invalid_field", "type"),
        (json!({"type": 7}), 400, "invalid_field", "string"),
        (
            json!({"type": "totp", "colour": "red"}),
            400,
            "unknown_field",
            "colour",
        ),
        (
            json!({"type": "webauthn", "relying_party_id": "nowhere.example"}),
            400,
            "unknown_relying_party",
            "relying_party_id",
        ),
        (
            json!({"type": "webauthn", "digits": 6}),
            400,
            "invalid_field",
            "digits",
        ),
        (
            json!({"type": "webauthn", "public_key": "AAAA"}),
            400,
            "invalid_field",
            "public_key",
        ),
        (
            json!({"type": "totp", "relying_party_id": "localhost"}),
            400,
            "invalid_field",
            "relying_party_id",
        ),
        (
            json!({"type": "webauthn", "relying_party_id": 7}),
            400,
            "invalid_field",
            "",
        ),
        (json!({"type": "push"}), 400, "invalid_field", "public_key"),
        (
            json!({"type": "totp", "digits": 5}),
            400,
            "out_of_range",
            "digits",
        ),
        (
            json!({"type": "totp", "digits": 9}),
            400,
            "out_of_range",
            "digits",
        ),
        (
            json!({"type": "totp", "digits": 4294967302u64}),
            400,
            "out_of_range",
            "digits",
        ),
        (
            json!({"type": "totp", "digits": -6}),
            400,
            "invalid_field",
            "",
        ),
        (
            json!({"type": "totp", "period_seconds": 19}),
            400,
            "out_of_range",
            "period_seconds",
        ),
        (
            json!({"type": "totp", "period_seconds": 61}),
            400,
            "out_of_range",
            "period_seconds",
        ),
        (
            json!({"type": "totp", "skew_steps": 3}),
            400,
            "out_of_range",
            "skew_steps",
        ),
        (
            json!({"type": "totp", "algorithm": "md5"}),
            400,
            "invalid_field",
            "algorithm",
        ),
        (
            json!({"type": "totp", "algorithm": "SHA1"}),
            400,
            "invalid_field",
            "algorithm",
        ),
        (
            json!({"type": "totp", "friendly_name": ""}),
            400,
            "invalid_field",
            "friendly_name",
        ),
        (
            json!({"type": "totp", "friendly_name": "x".repeat(65)}),
            400,
            "field_too_long",
            "friendly_name",
        ),
        (
            json!({"type": "totp", "issuer": "x".repeat(65)}),
            400,
            "field_too_long",
            "issuer",
        ),
    ];
    for (body, status, code, named) in cases {
        let response = enroll(&server, &token, "ivan", body.clone()).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{body}: {message:?} names {named}");
    }
    let malformed = server
        .http
        .post(server.url(&factors_path("ivan")))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"type\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(malformed).await, (400, "malformed_json".into()));
    let listed: Value = list(&server, &token, "ivan", "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["factors"], json!([]), "nothing was stored");

    for id in [
        "fac_AAAAAAAAAAAAAAAAAAAAAA",
        "nope",
        "ch_AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(
            error_code(get_factor(&server, &token, "ivan", id).await).await,
            (404, "factor_not_found".into()),
            "{id}"
        );
        assert_eq!(
            error_code(verify(&server, &token, "ivan", id, "123456").await).await,
            (404, "factor_not_found".into()),
            "{id}"
        );
    }
    let enrolled = enroll_ok(&server, "ivan", json!({"type": "totp"})).await;
    let id = enrolled["id"].as_str().unwrap();
    for body in [
        json!({}),
        json!({"code": ""}),
        json!({"code": "1".repeat(33)}),
        json!({"code": 123456}),
    ] {
        let response = server
            .post(
                Some(&token),
                &format!("{}/{id}/verify", factors_path("ivan")),
                body.clone(),
            )
            .await;
        let (status, _) = error_code(response).await;
        assert_eq!(status, 400, "{body}");
    }
    let read: Value = get_factor(&server, &token, "ivan", id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "unverified");
}

#[tokio::test]
async fn a_totp_challenge_needs_a_verified_factor_of_its_user() {
    let server = TestServer::start().await;
    let token = admin(&server, "acme");
    let unverified = enroll_ok(&server, "judy", json!({"type": "totp"})).await;
    let refused = create_totp(&server, "judy", unverified["id"].as_str().unwrap()).await;
    assert_eq!(
        error_code(refused).await,
        (409, "factor_not_verified".into())
    );
    let unknown = create_totp(&server, "judy", "fac_AAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(error_code(unknown).await, (404, "factor_not_found".into()));
    let malformed = create_totp(&server, "judy", "not-an-id").await;
    assert_eq!(
        error_code(malformed).await,
        (404, "factor_not_found".into())
    );
    let missing = server
        .create(&token, json!({"type": "totp", "user_id": "judy"}))
        .await;
    assert_eq!(error_code(missing).await, (400, "invalid_field".into()));
    let (verified, _, _) = verified_factor(&server, "judy", json!({"type": "totp"})).await;
    let id = verified["id"].as_str().unwrap();
    let on_token = server
        .create(
            &token,
            json!({"type": "token", "user_id": "judy", "factor_id": id}),
        )
        .await;
    assert_eq!(error_code(on_token).await, (400, "invalid_field".into()));
    let listed: Value = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["challenges"],
        json!([]),
        "no refused create stored anything"
    );
    let created = create_totp(&server, "judy", id).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["type"], "totp");
    assert!(created["actors"][0].get("answer_token").is_none());

    // A policy may name the type; its challenges still name their factor.
    let manager = server.token("acme", "challenge:policy:post challenge:post");
    let policy = server
        .post(
            Some(&manager),
            "/api/v1/policies",
            json!({"alias": "authenticator", "type": "totp", "ttl_seconds": 90}),
        )
        .await;
    assert_eq!(policy.status(), 201);
    let from_policy = server
        .create(
            &manager,
            json!({"policy": "authenticator", "user_id": "judy", "factor_id": id}),
        )
        .await;
    assert_eq!(from_policy.status(), 201);
    let from_policy: Value = from_policy.json().await.unwrap();
    assert_eq!(from_policy["type"], "totp");
    assert_eq!(from_policy["policy"]["alias"], "authenticator");
}

#[tokio::test]
async fn a_code_is_accepted_once_per_step_and_a_replay_looks_like_a_wrong_code() {
    let server = TestServer::start().await;
    let (factor, authenticator, step) =
        verified_factor(&server, "kim", json!({"type": "totp"})).await;
    let factor_id = factor["id"].as_str().unwrap();
    let mut challenges = Vec::new();
    for _ in 0..3 {
        let c: Value = create_totp(&server, "kim", factor_id)
            .await
            .json()
            .await
            .unwrap();
        challenges.push(c["id"].as_str().unwrap().to_string());
    }
    // The verification used `step`: its code is spent already.
    let spent = answer(&server, &challenges[0], &authenticator.code(step)).await;
    let spent: Value = spent.json().await.unwrap();
    assert_eq!(spent["error"]["code"], "wrong_answer");
    assert_eq!(spent["error"]["attempts_left"], 4);

    let next = authenticator.code(step + 1);
    let accepted = answer(&server, &challenges[0], &next).await;
    assert_eq!(accepted.status(), 200);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["state"], "verified");

    let replay = answer(&server, &challenges[1], &next).await;
    assert_eq!(replay.status(), 400);
    let replay: Value = replay.json().await.unwrap();
    let wrong = answer(&server, &challenges[2], &authenticator.wrong(step)).await;
    assert_eq!(wrong.status(), 400);
    let wrong: Value = wrong.json().await.unwrap();
    assert_eq!(
        replay, wrong,
        "a replay is told exactly what a wrong code is"
    );
    assert_eq!(wrong["error"]["attempts_left"], 4);

    let read: Value = get_factor(&server, &admin(&server, "acme"), "kim", factor_id)
        .await
        .json()
        .await
        .unwrap();
    assert!(read["last_used_at"].is_string(), "{read}");
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("totp_replays_refused_total"), "{metrics}");
    assert!(metrics.contains("factors_enrolled_total{type=\"totp\"}"));
    assert!(metrics.contains("factor_verifications_total{type=\"totp\",outcome=\"verified\"}"));
}

#[tokio::test]
async fn wrong_codes_cost_attempts_until_the_challenge_fails() {
    let server = TestServer::start().await;
    let (factor, authenticator, step) =
        verified_factor(&server, "leo", json!({"type": "totp"})).await;
    let created: Value = server
        .create(
            &admin(&server, "acme"),
            json!({"type": "totp", "user_id": "leo", "factor_id": factor["id"], "max_attempts": 2}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let first: Value = answer(&server, id, &authenticator.wrong(step))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["error"]["attempts_left"], 1);
    let second = answer(&server, id, &authenticator.wrong(step)).await;
    assert_eq!(second.status(), 400);
    let late = answer(&server, id, &authenticator.code(step + 1)).await;
    assert_eq!(error_code(late).await, (409, "failed".into()));
    // The failed challenge used up no step: the code still answers a new challenge.
    let fresh: Value = create_totp(&server, "leo", factor["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let ok = answer(
        &server,
        fresh["id"].as_str().unwrap(),
        &authenticator.code(step + 1),
    )
    .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn of_twenty_concurrent_answers_with_one_code_exactly_one_wins() {
    let server = TestServer::start().await;
    let (factor, authenticator, step) =
        verified_factor(&server, "mia", json!({"type": "totp"})).await;
    let factor_id = factor["id"].as_str().unwrap();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let c: Value = create_totp(&server, "mia", factor_id)
            .await
            .json()
            .await
            .unwrap();
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    let code = authenticator.code(step + 1);
    let answers = ids.iter().map(|id| answer(&server, id, &code));
    let responses = futures_util::future::join_all(answers).await;
    let mut won = 0;
    for response in responses {
        match response.status().as_u16() {
            200 => won += 1,
            400 => assert_eq!(error_code(response).await.1, "wrong_answer"),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn a_used_step_stays_used_across_a_restart() {
    let server = TestServer::start().await;
    // Period 20 s and skew 2: the codes of the next two steps are accepted now, so the
    // test needs no waiting for a new step.
    let (factor, authenticator, step) = verified_factor(
        &server,
        "nina",
        json!({"type": "totp", "period_seconds": 20, "skew_steps": 2}),
    )
    .await;
    let factor_id = factor["id"].as_str().unwrap().to_string();
    let before: Value = create_totp(&server, "nina", &factor_id)
        .await
        .json()
        .await
        .unwrap();
    let accepted = answer(
        &server,
        before["id"].as_str().unwrap(),
        &authenticator.code(step + 1),
    )
    .await;
    assert_eq!(accepted.status(), 200);

    let (settings, data) = server.stop().await;
    let restarted = TestServer::start_with(|s| {
        *s = settings.clone();
        s.storage.data_dir = data.path().to_path_buf();
    })
    .await;
    let mut after = Vec::new();
    for _ in 0..3 {
        let c: Value = create_totp(&restarted, "nina", &factor_id)
            .await
            .json()
            .await
            .unwrap();
        after.push(c["id"].as_str().unwrap().to_string());
    }
    for (id, code) in after
        .iter()
        .zip([authenticator.code(step + 1), authenticator.code(step)])
    {
        let refused = answer(&restarted, id, &code).await;
        assert_eq!(error_code(refused).await, (400, "wrong_answer".into()));
    }
    // The seed still opens after the restart: a later step's code is accepted.
    let later = answer(&restarted, &after[2], &authenticator.code(step + 2)).await;
    assert_eq!(later.status(), 200);
    drop(data);
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn no_seed_is_in_the_data_directory() {
    let server = TestServer::start().await;
    let (factor, authenticator, step) =
        verified_factor(&server, "oscar", json!({"type": "totp"})).await;
    let c: Value = create_totp(&server, "oscar", factor["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let ok = answer(
        &server,
        c["id"].as_str().unwrap(),
        &authenticator.code(step + 1),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let secret = factor["secret"].as_str().unwrap().to_string();
    let seed = Secret::Encoded(secret.clone()).to_bytes().unwrap();
    let (_, data) = server.stop().await;
    let all = files(data.path());
    assert!(all.iter().any(|p| p.ends_with("secrets.key")), "{all:?}");
    let mut scanned = 0;
    for path in &all {
        let bytes = std::fs::read(path).unwrap();
        scanned += bytes.len();
        assert!(
            !bytes.windows(seed.len()).any(|w| w == seed),
            "raw seed in {path:?}"
        );
        let lower = secret.to_lowercase();
        for needle in [
            secret.as_bytes(),
            lower.as_bytes(),
            &secret.as_bytes()[..16],
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "base32 seed in {path:?}"
            );
        }
    }
    assert!(scanned > 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = all.iter().find(|p| p.ends_with("secrets.key")).unwrap();
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn the_real_binary_logs_no_seed_and_documents_the_routes() {
    use crate::helpers::{token, ServerProcess};
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), logs.path(), &[]).await;
    let settings = challenge_server::config::Settings::development();
    let admin = token(&settings, "acme", &format!("{ALL_SCOPES} {ENROLLMENT}"));
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(server.url(&path))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let enrolled: Value = post(factors_path("pat"), json!({"type": "totp"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let authenticator = Authenticator::of(&enrolled);
    let id = enrolled["id"].as_str().unwrap();
    let step = authenticator.step_now();
    let verified = post(
        format!("{}/{id}/verify", factors_path("pat")),
        json!({"code": authenticator.code(step)}),
    )
    .await
    .unwrap();
    assert_eq!(verified.status(), 200);
    let challenge: Value = post(
        "/api/v1/challenges".into(),
        json!({"type": "totp", "user_id": "pat", "factor_id": id}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let path = format!(
        "/api/v1/challenges/{}/answer",
        challenge["id"].as_str().unwrap()
    );
    let code = authenticator.code(step + 1);
    assert_eq!(
        post(path.clone(), json!({"code": code}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post(path, json!({"code": code})).await.unwrap().status(),
        409
    );

    let doc: Value = http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for route in [
        "/api/v1/users/{user_id}/factors",
        "/api/v1/users/{user_id}/factors/{factor_id}",
        "/api/v1/users/{user_id}/factors/{factor_id}/verify",
    ] {
        assert!(doc["paths"][route].is_object(), "{route} is documented");
    }

    server.kill();
    let secret = enrolled["secret"].as_str().unwrap();
    let seed = Secret::Encoded(secret.to_string()).to_bytes().unwrap();
    let log = std::fs::read(&server.stderr_log).unwrap();
    assert!(!log.is_empty(), "the server logged at debug");
    let mut scanned = vec![server.stderr_log.clone()];
    scanned.extend(files(data.path()));
    for path in scanned {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(seed.len()).any(|w| w == seed),
            "raw seed in {path:?}"
        );
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "base32 seed in {path:?}"
        );
    }
}
