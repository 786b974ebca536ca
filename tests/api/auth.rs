//! Bearer authentication, scopes and tenant isolation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use challenge_server::config::{KeySettings, Settings, DEV_SECRET};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::*;

const RSA_PRIVATE: &str = include_str!("../fixtures/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("../fixtures/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("../fixtures/ec_private.pem");
const EC_PUBLIC: &str = include_str!("../fixtures/ec_public.pem");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"tenant": "acme", "sub": "svc", "scope": ALL_SCOPES, "exp": now() + 300});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn hs256(secret: &str, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_string);
    encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn with_asymmetric_keys(s: &mut Settings) {
    s.auth.audience = "challenge-server".into();
    s.auth.keys.push(KeySettings {
        kid: "rs".into(),
        algorithm: "RS256".into(),
        secret: None,
        public_key_pem: Some(RSA_PUBLIC.into()),
        public_key_file: None,
        private_key_pem: None,
        private_key_file: None,
    });
    s.auth.keys.push(KeySettings {
        kid: "ec".into(),
        algorithm: "ES256".into(),
        secret: None,
        public_key_pem: Some(EC_PUBLIC.into()),
        public_key_file: None,
        private_key_pem: None,
        private_key_file: None,
    });
}

async fn status_with(server: &TestServer, authorization: Option<String>) -> (u16, String) {
    let mut request = server.http.get(server.url("/api/v1/challenges"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        return (200, String::new());
    }
    error_code(response).await
}

#[tokio::test]
async fn valid_hs256_rs256_and_es256_tokens_are_accepted() {
    let server = TestServer::start_with(with_asymmetric_keys).await;
    let aud = json!({"aud": "challenge-server"});
    let hs = hs256(DEV_SECRET, &claims(aud.clone()), Some("dev"));
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rs".into());
    let rs = encode(
        &header,
        &claims(aud.clone()),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec".into());
    let es = encode(
        &header,
        &claims(aud.clone()),
        &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    // Without a kid, a key of the token's algorithm is found.
    let rs_no_kid = encode(
        &Header::new(Algorithm::RS256),
        &claims(aud),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    for token in [hs, rs, es, rs_no_kid] {
        assert_eq!(
            status_with(&server, Some(format!("Bearer {token}")))
                .await
                .0,
            200
        );
    }
}

#[tokio::test]
async fn bad_tokens_are_unauthorized() {
    let server = TestServer::start_with(with_asymmetric_keys).await;
    let aud = json!({"aud": "challenge-server"});
    let none_token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(aud.clone()).to_string())
    );
    // HS/RS confusion: an HMAC signed with the RSA public key, claiming the RSA key's kid.
    let confused_kid = hs256(RSA_PUBLIC, &claims(aud.clone()), Some("rs"));
    let confused = hs256(RSA_PUBLIC, &claims(aud.clone()), None);
    let cases = [
        ("missing", None),
        (
            "not bearer",
            Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l".to_string()),
        ),
        ("malformed", Some("Bearer not.a.jwt".to_string())),
        (
            "wrong signature",
            Some(format!(
                "Bearer {}",
                hs256(&"x".repeat(40), &claims(aud.clone()), Some("dev"))
            )),
        ),
        ("alg none", Some(format!("Bearer {none_token}"))),
        (
            "hs/rs confusion with kid",
            Some(format!("Bearer {confused_kid}")),
        ),
        ("hs/rs confusion", Some(format!("Bearer {confused}"))),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                hs256(
                    DEV_SECRET,
                    &claims(json!({"aud": "challenge-server", "exp": now() - 10})),
                    None
                )
            )),
        ),
        (
            "no exp",
            Some(format!("Bearer {}", {
                let mut c = claims(aud.clone());
                c.as_object_mut().unwrap().remove("exp");
                hs256(DEV_SECRET, &c, None)
            })),
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                hs256(DEV_SECRET, &claims(json!({"aud": "someone-else"})), None)
            )),
        ),
        (
            "no audience",
            Some(format!(
                "Bearer {}",
                hs256(DEV_SECRET, &claims(json!({})), None)
            )),
        ),
        (
            "unknown kid",
            Some(format!(
                "Bearer {}",
                hs256(DEV_SECRET, &claims(aud.clone()), Some("nope"))
            )),
        ),
        (
            "no tenant",
            Some(format!("Bearer {}", {
                let mut c = claims(aud.clone());
                c.as_object_mut().unwrap().remove("tenant");
                hs256(DEV_SECRET, &c, None)
            })),
        ),
        (
            "bad tenant",
            Some(format!(
                "Bearer {}",
                hs256(
                    DEV_SECRET,
                    &claims(json!({"aud": "challenge-server", "tenant": "a/b"})),
                    None
                )
            )),
        ),
    ];
    for (name, header) in cases {
        assert_eq!(
            status_with(&server, header).await,
            (401, "unauthorized".into()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_disallowed_algorithm_is_refused_even_with_a_valid_signature() {
    let server = TestServer::start_with(|s| s.auth.algorithms = vec!["RS256".into()]).await;
    let token = hs256(DEV_SECRET, &claims(json!({})), Some("dev"));
    assert_eq!(
        status_with(&server, Some(format!("Bearer {token}"))).await,
        (401, "unauthorized".into())
    );
}

#[tokio::test]
async fn a_configured_issuer_must_match() {
    let server = TestServer::start_with(|s| s.auth.issuer = "https://idp.example".into()).await;
    let good = hs256(
        DEV_SECRET,
        &claims(json!({"iss": "https://idp.example"})),
        None,
    );
    let bad = hs256(
        DEV_SECRET,
        &claims(json!({"iss": "https://evil.example"})),
        None,
    );
    let missing = hs256(DEV_SECRET, &claims(json!({})), None);
    assert_eq!(
        status_with(&server, Some(format!("Bearer {missing}"))).await,
        (401, "unauthorized".into())
    );
    assert_eq!(
        status_with(&server, Some(format!("Bearer {good}"))).await.0,
        200
    );
    assert_eq!(
        status_with(&server, Some(format!("Bearer {bad}"))).await,
        (401, "unauthorized".into())
    );
}

#[tokio::test]
async fn scopes_are_enforced_per_route() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let reader = server.token("acme", "challenge:get");
    let scp_array = hs256(
        DEV_SECRET,
        &json!({"tenant": "acme", "scp": ["challenge:get"], "exp": now() + 60}),
        None,
    );

    let create = server
        .create(&reader, json!({"type": "token", "user_id": "u-1"}))
        .await;
    assert_eq!(error_code(create).await, (403, "forbidden".into()));
    assert_eq!(server.get(&reader, id).await.status(), 200);
    assert_eq!(server.get(&scp_array, id).await.status(), 200);
    let cancel = server
        .http
        .delete(server.url(&format!("/api/v1/challenges/{id}")))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(cancel).await, (403, "forbidden".into()));
    for route in ["answer", "complete", "resend"] {
        let r = server
            .post(
                Some(&reader),
                &format!("/api/v1/challenges/{id}/{route}"),
                json!({}),
            )
            .await;
        assert_eq!(error_code(r).await, (403, "forbidden".into()), "{route}");
    }
    let writer = server.token("acme", "challenge:post");
    assert_eq!(
        error_code(server.get(&writer, id).await).await,
        (403, "forbidden".into())
    );
    assert_eq!(server.state_of(id).await["state"], "issued");
}

#[tokio::test]
async fn another_tenants_challenge_does_not_exist_for_you() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    let globex = server.token("globex", ALL_SCOPES);

    assert_eq!(
        error_code(server.get(&globex, id).await).await,
        (404, "challenge_not_found".into())
    );
    let poll = server
        .http
        .get(server.url(&format!("/api/v1/challenges/{id}?wait=5")))
        .bearer_auth(&globex)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(poll).await, (404, "challenge_not_found".into()));
    let list: Value = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(&globex)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["challenges"].as_array().unwrap().len(), 0);
    let cancel = server
        .http
        .delete(server.url(&format!("/api/v1/challenges/{id}")))
        .bearer_auth(&globex)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(cancel).await,
        (404, "challenge_not_found".into())
    );
    for route in ["complete", "resend"] {
        let r = server
            .post(
                Some(&globex),
                &format!("/api/v1/challenges/{id}/{route}"),
                json!({}),
            )
            .await;
        assert_eq!(
            error_code(r).await,
            (404, "challenge_not_found".into()),
            "{route}"
        );
    }
    // Even holding the real answer token, another tenant's bearer cannot answer.
    let answer = server
        .post(
            Some(&globex),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"answer_token": token}),
        )
        .await;
    assert_eq!(
        error_code(answer).await,
        (404, "challenge_not_found".into())
    );
    assert_eq!(server.state_of(id).await["state"], "issued");
}

#[tokio::test]
async fn an_invalid_bearer_on_an_answer_is_not_treated_as_anonymous() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    let r = server
        .post(
            Some("garbage"),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"answer_token": token}),
        )
        .await;
    assert_eq!(error_code(r).await, (401, "unauthorized".into()));
    assert_eq!(server.state_of(id).await["state"], "issued");
}

#[test]
fn the_token_subcommand_mints_a_token_the_server_accepts() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_challenge-server"))
        .args([
            "token",
            "--tenant",
            "acme",
            "--scope",
            "challenge:get",
            "--ttl",
            "60",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap();
    let verifier =
        challenge_server::auth::Verifier::from_settings(&Settings::development().auth).unwrap();
    let principal = verifier.verify(token.trim()).unwrap();
    assert_eq!(principal.tenant.as_str(), "acme");
    assert!(principal.has(challenge_server::auth::Scope::Get));
    assert!(!principal.has(challenge_server::auth::Scope::Post));
}
