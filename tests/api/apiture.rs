//! The Apiture face (`/auth/…`): the API key and bearer token, the authenticator types
//! this server serves, the include/exclude table, starting one authenticator (its code
//! alone is sent, through a real SMTP server or a local SMS gateway), verifying it to
//! `verified` or to `failed` at `maxAttempts`, one challenge per user under concurrent
//! creates, redemption exactly once under a race of 20, an expired challenge, the
//! step-up body, and every refusal with its `_error.type` and nothing changed.

use std::time::Duration;

use challenge_server::config::{ApitureApiKey, Secret, Settings, SmsFormat, SmtpTls};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::sinks::{HttpSink, SmtpSink};

const ACME_KEY: &str = "acme-apiture-key";
const BETA_KEY: &str = "beta-apiture-key";

/// Two keys: acme's given plain, beta's as its SHA-256.
fn with_keys(s: &mut Settings) {
    s.compat.apiture.api_keys = vec![
        ApitureApiKey {
            key: Secret::new(ACME_KEY),
            key_sha256: String::new(),
            tenant: "acme".into(),
        },
        ApitureApiKey {
            key: Secret::default(),
            key_sha256: hex::encode(Sha256::digest(BETA_KEY.as_bytes())),
            tenant: "beta".into(),
        },
    ];
    s.limits.default_max_attempts = 3;
}

fn with_transports(s: &mut Settings, smtp_port: u16, gateway: &str) {
    with_keys(s);
    s.email.smtp_host = "127.0.0.1".into();
    s.email.smtp_port = smtp_port;
    s.email.tls = SmtpTls::None;
    s.sms.gateway_url = gateway.to_string();
    s.sms.format = SmsFormat::Json;
    s.delivery.backoff_ms = 10;
}

struct Face {
    server: TestServer,
    smtp: SmtpSink,
    gateway: HttpSink,
}

async fn face_with(tweak: impl FnOnce(&mut Settings)) -> Face {
    let smtp = SmtpSink::start().await;
    let gateway = HttpSink::start();
    let url = gateway.url("/send");
    let server = TestServer::start_with(|s| {
        with_transports(s, smtp.port, &url);
        tweak(s);
    })
    .await;
    Face {
        server,
        smtp,
        gateway,
    }
}

async fn face() -> Face {
    face_with(|_| {}).await
}

/// A request with acme's key and a token of `scopes`.
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    scopes: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let token = server.token("acme", scopes);
    let mut request = server
        .http
        .request(method, server.url(path))
        .header("API-Key", ACME_KEY)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// The status and `_error.type` of a refusal.
async fn refusal(r: reqwest::Response) -> (u16, String) {
    let (status, body) = json_of(r).await;
    let error = &body["_error"];
    assert!(error["_id"].is_string(), "{body}");
    assert!(error["occurredAt"].is_string(), "{body}");
    assert!(error["message"].is_string(), "{body}");
    (
        status,
        error["type"].as_str().unwrap_or_default().to_string(),
    )
}

const ALICE: fn() -> Value = || {
    json!({"userId": "alice", "reason": "createTransfer",
           "channels": {"email": "alice@example.com", "phone": "+15551234567"}})
};

async fn create(server: &TestServer, query: &str, body: Value) -> reqwest::Response {
    call(
        server,
        Method::POST,
        &format!("/auth/challenges{query}"),
        ALL_SCOPES,
        Some(body),
    )
    .await
}

async fn create_ok(server: &TestServer) -> Value {
    let (status, body) = json_of(create(server, "", ALICE()).await).await;
    assert_eq!(status, 201, "{body}");
    body
}

fn authenticators(challenge: &Value) -> &Vec<Value> {
    challenge["_embedded"]["authenticators"]
        .as_array()
        .unwrap_or_else(|| panic!("no authenticators in {challenge}"))
}

fn names(challenge: &Value) -> Vec<String> {
    authenticators(challenge)
        .iter()
        .map(|a| a["type"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn authenticator<'a>(challenge: &'a Value, name: &str) -> &'a Value {
    authenticators(challenge)
        .iter()
        .find(|a| a["type"]["name"] == name)
        .unwrap_or_else(|| panic!("no {name} authenticator in {challenge}"))
}

fn href(v: &Value, rel: &str) -> String {
    v["_links"][rel]["href"].as_str().unwrap().to_string()
}

/// The first run of six digits in `text`.
fn code_in(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(6)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect())
        .unwrap_or_else(|| panic!("no code in {text:?}"))
}

fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c == '9' {
                '0'
            } else {
                ((c as u8) + 1) as char
            }
        })
        .collect()
}

async fn list_for(server: &TestServer, user: &str) -> Value {
    let (status, body) = json_of(
        call(
            server,
            Method::GET,
            &format!("/auth/challenges?userId={user}"),
            ALL_SCOPES,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Starts the email authenticator and verifies it with the mailed code.
async fn verify_by_email(face: &Face, challenge: &Value) -> Value {
    let email = authenticator(challenge, "email");
    let r = call(
        &face.server,
        Method::POST,
        &href(email, "apiture:start"),
        ALL_SCOPES,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let mail = face.smtp.wait_for(1).await.remove(0);
    let code = code_in(mail.part("text/plain").unwrap());
    let (status, body) = json_of(
        call(
            &face.server,
            Method::POST,
            &href(email, "apiture:verify"),
            ALL_SCOPES,
            Some(json!({"attributes": {"code": code}})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("verified")),
        "{body}"
    );
    body
}

#[tokio::test]
async fn the_api_key_and_the_bearer_token_are_both_required_and_must_agree() {
    let face = face().await;
    let server = &face.server;
    let path = server.url("/auth/authenticatorTypes");
    let acme = server.admin();
    let cases = [
        (None, Some(acme.clone()), 401, "missingApiKey"),
        (Some("not-a-key"), Some(acme.clone()), 401, "invalidApiKey"),
        (Some(ACME_KEY), None, 401, "unauthorized"),
        (
            Some(ACME_KEY),
            Some("garbage".to_string()),
            401,
            "unauthorized",
        ),
        // beta's key with acme's token.
        (Some(BETA_KEY), Some(acme.clone()), 401, "unauthorized"),
    ];
    for (key, token, status, kind) in cases {
        let mut request = server.http.get(&path);
        if let Some(key) = key {
            request = request.header("API-Key", key);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let got = refusal(request.send().await.unwrap()).await;
        assert_eq!(got, (status, kind.to_string()), "{key:?}");
    }
    // beta's key (configured as its SHA-256) with beta's token.
    let r = server
        .http
        .get(&path)
        .header("API-Key", BETA_KEY)
        .bearer_auth(server.token("beta", ALL_SCOPES))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn authenticator_types_are_those_this_server_can_serve() {
    let face = face().await;
    let (status, body) = json_of(
        call(
            &face.server,
            Method::GET,
            "/auth/authenticatorTypes",
            "challenge:get",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["_embedded"]["items"],
        json!([{"name": "sms", "category": "otp"}, {"name": "email", "category": "otp"},
               {"name": "totp", "category": "otp"}, {"name": "push", "category": "possession"}])
    );
    assert_eq!(body["count"], 4);

    // Without transports, neither sms nor email is offered, nor created.
    let bare = TestServer::start_with(|s| {
        with_keys(s);
        s.email.smtp_host = String::new();
        s.sms.gateway_url = String::new();
    })
    .await;
    let (_, body) = json_of(
        call(
            &bare,
            Method::GET,
            "/auth/authenticatorTypes",
            ALL_SCOPES,
            None,
        )
        .await,
    )
    .await;
    let listed: Vec<&str> = body["_embedded"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["totp", "push"]);
    let got = refusal(create(&bare, "", ALICE()).await).await;
    assert_eq!(got, (400, "noAuthenticators".to_string()));
}

#[tokio::test]
async fn a_challenge_has_one_authenticator_per_usable_type_with_masked_labels() {
    let face = face().await;
    let created = create_ok(&face.server).await;
    let id = created["_id"].as_str().unwrap();
    assert_eq!(created["state"], "pending");
    assert_eq!(created["userId"], "alice");
    assert_eq!(created["reason"], "createTransfer");
    assert_eq!(href(&created, "self"), format!("/auth/challenges/{id}"));
    assert_eq!(names(&created), ["sms", "email"]);
    let sms = authenticator(&created, "sms");
    assert_eq!(sms["type"], json!({"name": "sms", "category": "otp"}));
    assert_eq!(sms["state"], "pending");
    assert_eq!(sms["attempts"], 0);
    assert_eq!(sms["maxAttempts"], 3);
    assert_eq!(sms["labels"], json!(["4567"]));
    assert_eq!(
        authenticator(&created, "email")["labels"],
        json!(["a•••@example.com"])
    );
    let aid = sms["_id"].as_str().unwrap();
    let self_href = format!("/auth/challenges/{id}/authenticators/{aid}");
    assert_eq!(href(sms, "self"), self_href);
    assert_eq!(href(sms, "apiture:start"), format!("{self_href}/starts"));
    assert_eq!(
        href(sms, "apiture:verify"),
        format!("{self_href}/verifications")
    );
    assert!(!created.to_string().contains("+15551234567"));
    assert!(!created.to_string().contains("alice@example.com"));

    // Read back: the challenge, one authenticator, the user's list.
    let (status, read) = json_of(
        call(
            &face.server,
            Method::GET,
            &href(&created, "self"),
            "challenge:get",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read["_id"], created["_id"]);
    let (status, one) =
        json_of(call(&face.server, Method::GET, &self_href, "challenge:get", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(one["_id"], sms["_id"]);
    let listed = list_for(&face.server, "alice").await;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["_embedded"]["items"][0]["_id"], created["_id"]);
    assert_eq!(list_for(&face.server, "bob").await["count"], 0);

    // Natively it is one challenge whose methods are the authenticators.
    let native = face.server.state_of(id).await;
    assert_eq!(native["methods"].as_array().unwrap().len(), 2);
    assert_eq!(native["methods"][0]["id"], sms["_id"]);
    assert_eq!(
        face.gateway.requests().len(),
        0,
        "nothing is sent before a start"
    );
}

#[tokio::test]
async fn include_and_exclude_narrow_the_authenticators_and_exclude_wins() {
    let face = face().await;
    let table: [(&str, Result<&[&str], &str>); 11] = [
        ("", Ok(&["sms", "email"])),
        ("?include=sms", Ok(&["sms"])),
        ("?exclude=sms", Ok(&["email"])),
        ("?include=sms,email&exclude=email", Ok(&["sms"])),
        ("?include=sms&exclude=sms", Err("noAuthenticators")),
        ("?include=otp", Ok(&["sms", "email"])),
        ("?include=otp&exclude=sms", Ok(&["email"])),
        ("?include=email&exclude=possession", Ok(&["email"])),
        ("?exclude=otp", Err("noAuthenticators")),
        ("?include=possession", Err("noAuthenticators")),
        ("?include=sms,bogus", Err("unknownAuthenticatorType")),
    ];
    for (query, expected) in table {
        let r = create(&face.server, query, ALICE()).await;
        match expected {
            Ok(types) => {
                let (status, body) = json_of(r).await;
                assert_eq!(status, 201, "{query}: {body}");
                assert_eq!(names(&body), types, "{query}");
            }
            Err(kind) => {
                assert_eq!(refusal(r).await, (400, kind.to_string()), "{query}");
            }
        }
    }
}

#[tokio::test]
async fn bad_creates_are_refused_with_their_type_and_create_nothing() {
    let face = face().await;
    let server = &face.server;
    let cases = [
        (json!({"reason": "x"}), "invalidField"),
        (json!({"userId": "alice", "color": "red"}), "unknownField"),
        (
            json!({"userId": "alice", "channels": {"fax": "1"}}),
            "unknownField",
        ),
        (json!({"userId": ""}), "invalidRequest"),
        (
            json!({"userId": "alice", "channels": {"factorIds": ["nope"]}}),
            "invalidChannels",
        ),
        (
            json!({"userId": "alice", "channels": {}}),
            "noAuthenticators",
        ),
        (
            json!({"userId": "alice", "channels": {"phone": "12"}}),
            "invalidPhone",
        ),
    ];
    for (body, kind) in cases {
        let got = refusal(create(server, "", body.clone()).await).await;
        assert_eq!(got, (400, kind.to_string()), "{body}");
    }
    let r = server
        .http
        .post(server.url("/auth/challenges"))
        .header("API-Key", ACME_KEY)
        .bearer_auth(server.admin())
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(r).await, (400, "malformedJson".to_string()));
    let r = call(
        server,
        Method::POST,
        "/auth/challenges?bogus=1",
        ALL_SCOPES,
        Some(ALICE()),
    )
    .await;
    assert_eq!(refusal(r).await, (400, "invalidQuery".to_string()));
    // The wrong scope: 403, whatever the body.
    let r = call(
        server,
        Method::POST,
        "/auth/challenges",
        "challenge:get",
        Some(ALICE()),
    )
    .await;
    assert_eq!(refusal(r).await, (403, "forbidden".to_string()));
    assert_eq!(
        list_for(server, "alice").await["count"],
        0,
        "nothing was created"
    );
    let r = call(server, Method::GET, "/auth/challenges", ALL_SCOPES, None).await;
    assert_eq!(refusal(r).await, (400, "invalidRequest".to_string()));
}

#[tokio::test]
async fn starting_an_authenticator_sends_only_its_code_and_the_code_verifies_it() {
    let face = face().await;
    let created = create_ok(&face.server).await;
    let sms = authenticator(&created, "sms");
    // Reading needs challenge:get, starting and verifying challenge:answer.
    let r = call(
        &face.server,
        Method::POST,
        &href(sms, "apiture:start"),
        "challenge:get",
        None,
    )
    .await;
    assert_eq!(refusal(r).await, (403, "forbidden".to_string()));
    let (status, started) = json_of(
        call(
            &face.server,
            Method::POST,
            &href(sms, "apiture:start"),
            "challenge:answer",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, started["state"].as_str()),
        (200, Some("started")),
        "{started}"
    );
    let id = created["_id"].as_str().unwrap();
    let code = eventually(Duration::from_secs(20), || async {
        face.gateway.requests().iter().find_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            (body["challenge_id"] == id).then(|| code_in(body["body"].as_str().unwrap()))
        })
    })
    .await;
    assert_eq!(face.gateway.requests().len(), 1);
    assert!(
        face.smtp.messages().is_empty(),
        "the email authenticator sent nothing"
    );
    let (_, read) = json_of(
        call(
            &face.server,
            Method::GET,
            &href(&created, "self"),
            ALL_SCOPES,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(authenticator(&read, "email")["state"], "pending");

    // A body without a code is refused, and costs nothing.
    for body in [
        json!({}),
        json!({"attributes": {}}),
        json!({"attributes": {"code": ""}}),
    ] {
        let r = call(
            &face.server,
            Method::POST,
            &href(sms, "apiture:verify"),
            "challenge:answer",
            Some(body),
        )
        .await;
        assert_eq!(
            refusal(r).await,
            (400, "invalidAuthenticatorAttributes".to_string())
        );
    }
    let (status, verified) = json_of(
        call(
            &face.server,
            Method::POST,
            &href(sms, "apiture:verify"),
            "challenge:answer",
            Some(json!({"attributes": {"code": code}})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["state"], "verified");
    assert_eq!(verified["attempts"], 0);
    let (_, read) = json_of(
        call(
            &face.server,
            Method::GET,
            &href(&created, "self"),
            ALL_SCOPES,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(read["state"], "verified");
    assert!(!read.to_string().contains(&code));
}

#[tokio::test]
async fn wrong_codes_count_attempts_and_the_last_fails_the_authenticator() {
    let face = face().await;
    let created = create_ok(&face.server).await;
    let email = authenticator(&created, "email");
    let r = call(
        &face.server,
        Method::POST,
        &href(email, "apiture:start"),
        ALL_SCOPES,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let mail = face.smtp.wait_for(1).await.remove(0);
    let code = code_in(mail.part("text/plain").unwrap());
    let verify_path = href(email, "apiture:verify");
    let verify = |code: String| {
        call(
            &face.server,
            Method::POST,
            &verify_path,
            ALL_SCOPES,
            Some(json!({"attributes": {"code": code}})),
        )
    };
    for attempt in 1..3 {
        let (status, body) = json_of(verify(wrong(&code)).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["state"], "started");
        assert_eq!(body["attempts"], attempt);
    }
    let got = refusal(verify(wrong(&code)).await).await;
    assert_eq!(got, (409, "authenticatorAttemptsExceeded".to_string()));
    let (_, failed) = json_of(
        call(
            &face.server,
            Method::GET,
            &href(email, "self"),
            ALL_SCOPES,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["attempts"], 3);
    // The right code is too late now.
    let got = refusal(verify(code).await).await;
    assert_eq!(got, (409, "authenticatorAttemptsExceeded".to_string()));
    let r = call(
        &face.server,
        Method::POST,
        &href(email, "apiture:start"),
        ALL_SCOPES,
        None,
    )
    .await;
    assert_eq!(refusal(r).await.0, 409);
    // The other authenticator still answers: the challenge is pending.
    let (_, read) = json_of(
        call(
            &face.server,
            Method::GET,
            &href(&created, "self"),
            ALL_SCOPES,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(read["state"], "pending");
    assert_eq!(authenticator(&read, "sms")["state"], "pending");
}

#[tokio::test]
async fn a_new_challenge_deletes_the_users_earlier_one() {
    let face = face().await;
    let first = create_ok(&face.server).await;
    let second = create_ok(&face.server).await;
    for path in [
        href(&first, "self"),
        href(authenticator(&first, "sms"), "self"),
    ] {
        let r = call(&face.server, Method::GET, &path, ALL_SCOPES, None).await;
        assert_eq!(refusal(r).await.0, 404, "{path}");
    }
    let r = call(
        &face.server,
        Method::POST,
        &href(authenticator(&first, "sms"), "apiture:start"),
        ALL_SCOPES,
        None,
    )
    .await;
    assert_eq!(refusal(r).await, (404, "challengeNotFound".to_string()));
    let native = face.server.state_of(first["_id"].as_str().unwrap()).await;
    assert_eq!(native["state"], "cancelled");
    let listed = list_for(&face.server, "alice").await;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["_embedded"]["items"][0]["_id"], second["_id"]);
}

#[tokio::test]
async fn concurrent_creates_for_one_user_leave_exactly_one_active() {
    let face = face().await;
    let server = &face.server;
    let creates = (0..12).map(|_| create(server, "", ALICE()));
    let responses = futures_util::future::join_all(creates).await;
    let mut ids = Vec::new();
    for r in responses {
        let (status, body) = json_of(r).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["_id"].as_str().unwrap().to_string());
    }
    let mut readable = 0;
    let mut issued = 0;
    for id in &ids {
        let r = call(
            server,
            Method::GET,
            &format!("/auth/challenges/{id}"),
            ALL_SCOPES,
            None,
        )
        .await;
        if r.status() == 200 {
            readable += 1;
        }
        match server.state_of(id).await["state"].as_str().unwrap() {
            "issued" => issued += 1,
            state => assert_eq!(state, "cancelled"),
        }
    }
    assert_eq!((readable, issued), (1, 1), "exactly one survives");
    let listed = list_for(server, "alice").await;
    assert_eq!(listed["count"], 1);
    let survivor = listed["_embedded"]["items"][0]["_id"].as_str().unwrap();
    assert_eq!(server.state_of(survivor).await["state"], "issued");
}

#[tokio::test]
async fn a_verified_challenge_is_redeemed_exactly_once_under_a_race_of_20() {
    let face = face().await;
    let created = create_ok(&face.server).await;
    let id = created["_id"].as_str().unwrap().to_string();
    let redeem_path = href(&created, "apiture:redeem");
    let redeem = |header: Option<String>, scopes: &'static str| {
        let token = face.server.token("acme", scopes);
        let mut request = face
            .server
            .http
            .post(face.server.url(&redeem_path))
            .header("API-Key", ACME_KEY)
            .bearer_auth(token);
        if let Some(h) = header {
            request = request.header("Apiture-Challenge", h);
        }
        async move { request.send().await.unwrap() }
    };
    let got = refusal(redeem(Some(id.clone()), ALL_SCOPES).await).await;
    assert_eq!(got, (409, "challengedNotVerified".to_string()));
    verify_by_email(&face, &created).await;
    let got = refusal(redeem(None, ALL_SCOPES).await).await;
    assert_eq!(got, (401, "missingApitureChallengeHeader".to_string()));
    let got = refusal(redeem(Some("someone-else".into()), ALL_SCOPES).await).await;
    assert_eq!(got, (400, "challengeRefNotFound".to_string()));
    let got = refusal(redeem(Some(id.clone()), "challenge:get challenge:answer").await).await;
    assert_eq!(got, (403, "forbidden".to_string()));
    assert_eq!(
        face.server.state_of(&id).await["state"],
        "verified",
        "nothing changed"
    );

    let race = (0..20).map(|_| redeem(Some(id.clone()), "challenge:complete"));
    let responses = futures_util::future::join_all(race).await;
    let mut won = 0;
    for r in responses {
        if r.status() == 200 {
            won += 1;
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["state"], "redeemed");
        } else {
            let (status, kind) = refusal(r).await;
            assert_eq!(status, 409);
            assert!(
                kind == "redeemChallengeConflict" || kind == "challengedAlreadyRedeemed",
                "{kind}"
            );
        }
    }
    assert_eq!(won, 1, "exactly one redemption wins");
    let got = refusal(redeem(Some(id.clone()), ALL_SCOPES).await).await;
    assert_eq!(got, (409, "challengedAlreadyRedeemed".to_string()));
    assert_eq!(face.server.state_of(&id).await["state"], "completed");
}

#[tokio::test]
async fn an_expired_challenge_cannot_be_started_verified_or_redeemed() {
    let face = face_with(|s| s.limits.default_ttl_seconds = 1).await;
    let created = create_ok(&face.server).await;
    let self_href = href(&created, "self");
    let read = eventually(Duration::from_secs(20), || async {
        let (_, read) =
            json_of(call(&face.server, Method::GET, &self_href, ALL_SCOPES, None).await).await;
        (read["state"] == "expired").then_some(read)
    })
    .await;
    assert_eq!(authenticator(&read, "sms")["state"], "expired");
    let sms = authenticator(&created, "sms");
    let r = call(
        &face.server,
        Method::POST,
        &href(sms, "apiture:start"),
        ALL_SCOPES,
        None,
    )
    .await;
    assert_eq!(refusal(r).await, (409, "challengedExpired".to_string()));
    let r = call(
        &face.server,
        Method::POST,
        &href(sms, "apiture:verify"),
        ALL_SCOPES,
        Some(json!({"attributes": {"code": "123456"}})),
    )
    .await;
    assert_eq!(refusal(r).await, (409, "challengedExpired".to_string()));
    let id = created["_id"].as_str().unwrap();
    let r = face
        .server
        .http
        .post(face.server.url(&href(&created, "apiture:redeem")))
        .header("API-Key", ACME_KEY)
        .header("Apiture-Challenge", id)
        .bearer_auth(face.server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(r).await, (409, "challengedExpired".to_string()));
    assert!(face.gateway.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn other_tenants_ids_native_challenges_and_unknown_authenticators_answer_404() {
    let face = face().await;
    let server = &face.server;
    let created = create_ok(server).await;
    let sms = authenticator(&created, "sms");
    let beta = server.token("beta", ALL_SCOPES);
    let id = created["_id"].as_str().unwrap();
    for (method, path, body) in [
        (Method::GET, href(&created, "self"), None),
        (Method::GET, href(sms, "self"), None),
        (Method::POST, href(sms, "apiture:start"), None),
        (
            Method::POST,
            href(sms, "apiture:verify"),
            Some(json!({"attributes": {"code": "123456"}})),
        ),
        (Method::POST, href(&created, "apiture:redeem"), None),
    ] {
        let mut request = server
            .http
            .request(method, server.url(&path))
            .header("API-Key", BETA_KEY)
            .header("Apiture-Challenge", id)
            .bearer_auth(&beta);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        assert_eq!(
            refusal(r).await,
            (404, "challengeNotFound".to_string()),
            "{path}"
        );
    }
    assert_eq!(
        server.state_of(created["_id"].as_str().unwrap()).await["methods"][0]["started"],
        false
    );

    let native = server
        .create_ok(json!({"user_id": "alice", "methods": [{"type": "token"}]}))
        .await;
    let path = format!("/auth/challenges/{}", native["id"].as_str().unwrap());
    let r = call(server, Method::GET, &path, ALL_SCOPES, None).await;
    assert_eq!(refusal(r).await, (404, "challengeNotFound".to_string()));
    let r = call(
        server,
        Method::GET,
        "/auth/challenges/not-an-id",
        ALL_SCOPES,
        None,
    )
    .await;
    assert_eq!(refusal(r).await, (404, "challengeNotFound".to_string()));
    let unknown = format!("{}/authenticators/nope", href(&created, "self"));
    let r = call(server, Method::GET, &unknown, ALL_SCOPES, None).await;
    assert_eq!(refusal(r).await, (404, "authenticatorNotFound".to_string()));
    let r = call(
        server,
        Method::DELETE,
        &href(&created, "self"),
        ALL_SCOPES,
        None,
    )
    .await;
    assert_eq!(refusal(r).await, (405, "methodNotAllowed".to_string()));
}

#[tokio::test]
async fn the_step_up_call_returns_the_401_body_with_the_challenge_embedded() {
    let face = face().await;
    let server = &face.server;
    let (status, body) = json_of(
        call(
            server,
            Method::POST,
            "/auth/challengeRequired?include=email",
            ALL_SCOPES,
            Some(ALICE()),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let error = &body["_error"];
    assert_eq!(error["type"], "challengeRequired");
    assert!(error["_id"].is_string() && error["occurredAt"].is_string());
    let challenge = &error["_embedded"]["challenge"];
    assert_eq!(names(challenge), ["email"]);
    let (status, read) = json_of(
        call(
            server,
            Method::GET,
            &href(challenge, "self"),
            ALL_SCOPES,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read["_id"], challenge["_id"]);
    let verified = verify_by_email(&face, challenge).await;
    assert_eq!(verified["state"], "verified");
    let r = call(
        server,
        Method::POST,
        "/auth/challengeRequired",
        "challenge:get",
        Some(ALICE()),
    )
    .await;
    assert_eq!(refusal(r).await, (403, "forbidden".to_string()));
}

#[tokio::test]
async fn the_face_is_labelled_apiture_in_the_metrics() {
    let face = face().await;
    let server = &face.server;
    create_ok(server).await;
    let text = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth(server.token("acme", "challenge:metrics:get"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("face=\"apiture\"") && l.contains("route=\"/auth/challenges\"")),
        "{text}"
    );
}

#[tokio::test]
async fn verified_factors_add_totp_and_push_authenticators_that_categories_select() {
    let face = face().await;
    let server = &face.server;
    let (enrolled, app, step) =
        crate::factors::verified_factor(server, "alice", json!({"type": "totp"})).await;
    let totp = enrolled["id"].as_str().unwrap().to_string();
    let device = crate::push::enrolled_device(server, "alice", "none").await;
    let body = json!({"userId": "alice", "reason": "createTransfer",
        "channels": {"email": "alice@example.com", "phone": "+15551234567",
                     "factorIds": [totp, device.factor_id]}});
    let table: [(&str, &[&str]); 6] = [
        ("", &["sms", "email", "totp", "push"]),
        ("?include=possession", &["push"]),
        ("?include=otp&exclude=sms,email", &["totp"]),
        ("?exclude=otp", &["push"]),
        ("?include=totp,possession&exclude=push", &["totp"]),
        ("?include=", &["sms", "email", "totp", "push"]),
    ];
    for (query, expected) in table {
        let (status, created) = json_of(create(server, query, body.clone()).await).await;
        assert_eq!(status, 201, "{query}: {created}");
        assert_eq!(names(&created), expected, "{query}");
    }

    // A totp authenticator is started from the start; its start sends nothing.
    let (_, created) = json_of(create(server, "?include=totp", body.clone()).await).await;
    let totp_authenticator = authenticator(&created, "totp");
    assert_eq!(totp_authenticator["state"], "started");
    assert_eq!(totp_authenticator["labels"], json!([]));
    let (status, started) = json_of(
        call(
            server,
            Method::POST,
            &href(totp_authenticator, "apiture:start"),
            ALL_SCOPES,
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, started["state"].as_str()), (200, Some("started")));
    let (status, verified) = json_of(
        call(
            server,
            Method::POST,
            &href(totp_authenticator, "apiture:verify"),
            ALL_SCOPES,
            Some(json!({"attributes": {"code": app.code(step + 1)}})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, verified["state"].as_str()),
        (200, Some("verified")),
        "{verified}"
    );
    assert!(face.gateway.requests().is_empty() && face.smtp.messages().is_empty());

    // A push authenticator reaches its device once started, showing the reason; a code
    // does not answer it.
    let (_, created) = json_of(create(server, "?include=push", body.clone()).await).await;
    let push = authenticator(&created, "push");
    assert_eq!(push["state"], "pending");
    assert!(crate::push::open_challenges(server, &device)
        .await
        .is_empty());
    let r = call(
        server,
        Method::POST,
        &href(push, "apiture:start"),
        ALL_SCOPES,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let open = crate::push::open_challenges(server, &device).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], created["_id"]);
    assert_eq!(open[0]["details"]["message"], "createTransfer");
    let r = call(
        server,
        Method::POST,
        &href(push, "apiture:verify"),
        ALL_SCOPES,
        Some(json!({"attributes": {"code": "123456"}})),
    )
    .await;
    assert_eq!(
        refusal(r).await,
        (409, "invalidAuthenticatorState".to_string())
    );

    // An unverified factor, or one of another user, is refused, and nothing is created.
    let r = server
        .http
        .post(server.url("/api/v1/users/alice/factors"))
        .bearer_auth(server.token("acme", "challenge:enrollment:post"))
        .json(&json!({"type": "totp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let unverified: Value = r.json().await.unwrap();
    let before = list_for(server, "alice").await["_embedded"]["items"][0]["_id"].clone();
    for (user, factor) in [
        ("alice", unverified["id"].as_str().unwrap()),
        ("bob", totp.as_str()),
    ] {
        let body = json!({"userId": user, "channels": {"factorIds": [factor]}});
        let got = refusal(create(server, "", body).await).await;
        assert_eq!(got, (400, "invalidChannels".to_string()), "{user}");
    }
    assert_eq!(
        list_for(server, "alice").await["_embedded"]["items"][0]["_id"],
        before
    );
}

#[tokio::test]
async fn each_route_needs_its_native_scope_and_a_refusal_changes_nothing() {
    let face = face().await;
    let server = &face.server;
    let created = create_ok(server).await;
    let sms = authenticator(&created, "sms");
    let everything_but = |scope: &str| {
        ALL_SCOPES
            .split(' ')
            .filter(|s| *s != scope)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let code = Some(json!({"attributes": {"code": "123456"}}));
    let cases = [
        (Method::GET, href(&created, "self"), "challenge:get", None),
        (
            Method::GET,
            "/auth/challenges?userId=alice".to_string(),
            "challenge:get",
            None,
        ),
        (Method::GET, href(sms, "self"), "challenge:get", None),
        (
            Method::POST,
            href(sms, "apiture:start"),
            "challenge:answer",
            None,
        ),
        (
            Method::POST,
            href(sms, "apiture:verify"),
            "challenge:answer",
            code,
        ),
        (
            Method::POST,
            href(&created, "apiture:redeem"),
            "challenge:complete",
            None,
        ),
        (
            Method::POST,
            "/auth/challengeRequired".to_string(),
            "challenge:post",
            Some(ALICE()),
        ),
    ];
    for (method, path, scope, body) in cases {
        let token = server.token("acme", &everything_but(scope));
        let mut request = server
            .http
            .request(method, server.url(&path))
            .header("API-Key", ACME_KEY)
            .header("Apiture-Challenge", created["_id"].as_str().unwrap())
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let got = refusal(request.send().await.unwrap()).await;
        assert_eq!(
            got,
            (403, "forbidden".to_string()),
            "{path} without {scope}"
        );
    }
    let native = server.state_of(created["_id"].as_str().unwrap()).await;
    assert_eq!(native["state"], "issued");
    assert_eq!(native["methods"][0]["started"], false);
    assert_eq!(native["methods"][0]["attempts_left"], 3);
    assert!(face.gateway.requests().is_empty());
    let listed = list_for(server, "alice").await;
    assert_eq!(
        listed["_embedded"]["items"][0]["_id"], created["_id"],
        "no new challenge"
    );
}
