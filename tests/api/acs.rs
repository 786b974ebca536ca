//! The OneWelcome ACS face, `/compat/acs/v1/…`: every route in ACS names, success and
//! refusal, and the round trip — what is made through ACS reads natively and back, what
//! is made or answered natively reads through ACS.

use std::time::Duration;

use challenge_server::config::{Settings, SmtpTls};
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::helpers::*;
use crate::sinks::{HttpSink, SmtpSink};

const EVERY_SCOPE: &str = "challenge:post challenge:get challenge:delete challenge:answer \
     challenge:resend challenge:complete challenge:policy:get challenge:policy:post \
     challenge:policy:put challenge:policy:delete challenge:configuration:get \
     challenge:configuration:put";

fn manager(server: &TestServer, tenant: &str) -> String {
    server.token(tenant, EVERY_SCOPE)
}

fn mail_to(s: &mut Settings, port: u16) {
    s.email.smtp_host = "127.0.0.1".into();
    s.email.smtp_port = port;
    s.email.tls = SmtpTls::None;
    s.delivery.backoff_ms = 10;
}

/// The first run of `len` digits in `text`.
fn code_in(text: &str, len: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(len)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect())
        .unwrap_or_else(|| panic!("no {len}-digit code in {text:?}"))
}

struct Call<'a> {
    server: &'a TestServer,
    method: Method,
    path: String,
    token: Option<String>,
    if_match: Option<&'a str>,
    body: Option<Value>,
}

impl<'a> Call<'a> {
    fn new(server: &'a TestServer, method: Method, path: &str) -> Self {
        Call {
            server,
            method,
            path: path.to_string(),
            token: Some(manager(server, "acme")),
            if_match: None,
            body: None,
        }
    }
    fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }
    fn if_match(mut self, version: &'a str) -> Self {
        self.if_match = Some(version);
        self
    }
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    async fn send(self) -> reqwest::Response {
        let mut request = self
            .server
            .http
            .request(self.method, self.server.url(&self.path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(version) = self.if_match {
            request = request.header("If-Match", version);
        }
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }
    /// Status and JSON body (`null` for an empty one).
    async fn json(self) -> (u16, Value) {
        let response = self.send().await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, body)
    }
    /// Status and `error.code`.
    async fn error(self) -> (u16, String) {
        error_code(self.send().await).await
    }
}

fn acs<'a>(server: &'a TestServer, method: Method, path: &str) -> Call<'a> {
    Call::new(server, method, &format!("/compat/acs/v1{path}"))
}

fn native<'a>(server: &'a TestServer, method: Method, path: &str) -> Call<'a> {
    Call::new(server, method, &format!("/api/v1{path}"))
}

/// No key of `value` (an ACS body), at any depth but inside what callers wrote
/// themselves, is snake_case.
fn assert_acs_names(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                assert!(!key.contains('_'), "snake_case key {key} in {value}");
                if !matches!(key.as_str(), "details" | "hiddenDetails" | "locales") {
                    assert_acs_names(v);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(assert_acs_names),
        _ => {}
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn a_challenge_created_through_acs_by_policy_alias_reads_natively_and_back() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| mail_to(s, sink.port)).await;
    let (status, policy) = acs(&server, Method::POST, "/policies")
        .body(
            json!({"alias": "login-otp", "type": "EMAIL_OTP", "ttlSeconds": 300,
            "maxAttempts": 3, "codeLength": 6, "codeAlphabet": "DIGITS", "maxResends": 2,
            "resendCooldownSeconds": 0, "resendMode": "SAME"}),
        )
        .json()
        .await;
    assert_eq!(status, 201, "{policy}");
    assert_eq!(policy["type"], "EMAIL_OTP");
    assert_eq!(policy["codeAlphabet"], "DIGITS");
    assert_acs_names(&policy);

    let (status, created) = acs(&server, Method::POST, "/challenges")
        .body(json!({"policyAlias": "login-otp", "userId": "u-1",
            "recipient": {"email": "alice@example.com"}}))
        .json()
        .await;
    assert_eq!(status, 201, "{created}");
    assert_acs_names(&created);
    let id = id_of(&created);
    assert!(id.starts_with("ch_"));
    assert_eq!(created["type"], "EMAIL_OTP");
    assert_eq!(created["status"], "ISSUED");
    assert_eq!(created["userId"], "u-1");
    assert_eq!(created["remainingAttempts"], 3);
    assert_eq!(created["remainingResends"], 2);
    assert_eq!(created["policyAlias"], "login-otp");
    assert_eq!(created["policyVersion"], 1);
    assert_eq!(created["delivery"][0]["channel"], "EMAIL");
    assert_eq!(created["delivery"][0]["to"], "a•••@example.com");

    let natively = server.state_of(&id).await;
    assert_eq!(natively["type"], "email_otp");
    assert_eq!(natively["state"], "issued");
    assert_eq!(natively["user_id"], "u-1");
    assert_eq!(natively["attempts_left"], 3);
    assert_eq!(
        natively["policy"],
        json!({"alias": "login-otp", "version": 1})
    );
    assert_eq!(natively["expires_at"], created["expiresAt"]);

    let code = code_in(sink.wait_for(1).await[0].part("text/plain").unwrap(), 6);
    let (status, resent) = acs(&server, Method::POST, &format!("/challenges/{id}/resend"))
        .json()
        .await;
    assert_eq!(status, 202, "{resent}");
    assert_eq!(resent["remainingResends"], 1);
    let again = code_in(sink.wait_for(2).await[1].part("text/plain").unwrap(), 6);
    assert_eq!(again, code, "the policy resends the same code");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, refused) = acs(&server, Method::POST, &format!("/challenges/{id}/answer"))
        .body(json!({"code": wrong}))
        .json()
        .await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"]["code"], "wrong_answer");
    assert_eq!(refused["error"]["remainingAttempts"], 2);
    assert!(refused["error"].get("attempts_left").is_none());
    assert_eq!(server.state_of(&id).await["attempts_left"], 2);

    let answered = native(&server, Method::POST, &format!("/challenges/{id}/answer"))
        .body(json!({"code": code}))
        .send()
        .await;
    assert_eq!(answered.status(), 200);
    let (status, read) = acs(&server, Method::GET, &format!("/challenges/{id}"))
        .json()
        .await;
    assert_eq!(status, 200);
    assert_eq!(read["status"], "VERIFIED");
    assert_eq!(read["answeredBy"]["userId"], "u-1");
    assert!(read["answeredAt"].is_string());
    assert!(!read.to_string().contains(&code), "the code is never shown");

    let (status, completed) = acs(&server, Method::POST, &format!("/challenges/{id}/complete"))
        .json()
        .await;
    assert_eq!(status, 200);
    assert_eq!(completed["status"], "COMPLETED");
    assert_eq!(server.state_of(&id).await["state"], "completed");

    // The policy made through ACS is a native policy.
    let (status, native_policy) = native(&server, Method::GET, "/policies/login-otp")
        .json()
        .await;
    assert_eq!(status, 200);
    assert_eq!(native_policy["type"], "email_otp");
    assert_eq!(native_policy["code_alphabet"], "digits");
    assert_eq!(native_policy["resend_mode"], "same");
    let (status, from_native) = native(&server, Method::POST, "/challenges")
        .body(json!({"policy": "login-otp", "user_id": "u-2",
            "recipient": {"email": "bob@example.com"}}))
        .json()
        .await;
    assert_eq!(status, 201, "{from_native}");
    assert_eq!(from_native["attempts_left"], 3);
}

#[tokio::test]
async fn a_token_challenge_made_through_acs_is_answered_with_its_token_value() {
    let server = TestServer::start().await;
    let (status, created) = acs(&server, Method::POST, "/challenges")
        .body(
            json!({"type": "TOKEN", "userId": "u-2", "ttlSeconds": 120, "maxAttempts": 2,
            "details": {"message": "Approve the transfer?"},
            "hiddenDetails": {"ip": "203.0.113.9"}}),
        )
        .json()
        .await;
    assert_eq!(status, 201, "{created}");
    assert_acs_names(&created);
    let id = id_of(&created);
    let token = created["actors"][0]["answerToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(created["actors"][0]["answerUrl"]
        .as_str()
        .unwrap()
        .contains(&format!("/c/{id}?t=")));
    assert_eq!(created["remainingAttempts"], 2);
    assert!(created.get("remainingResends").is_none());
    assert_eq!(created["policyAlias"], Value::Null);
    assert_eq!(created["hiddenDetails"]["ip"], "203.0.113.9");
    let created_at = OffsetDateTime::parse(created["createdAt"].as_str().unwrap(), &Rfc3339);
    let expires_at = OffsetDateTime::parse(created["expiresAt"].as_str().unwrap(), &Rfc3339);
    assert_eq!(
        (expires_at.unwrap() - created_at.unwrap()).whole_seconds(),
        120
    );

    let path = format!("/challenges/{id}");
    assert_eq!(
        acs(&server, Method::POST, &format!("{path}/resend"))
            .error()
            .await,
        (409, "not_deliverable".into())
    );
    let (status, early) = acs(&server, Method::POST, &format!("{path}/complete"))
        .json()
        .await;
    assert_eq!(
        (status, &early["error"]["code"]),
        (409, &json!("not_completable"))
    );
    let message = early["error"]["message"].as_str().unwrap();
    assert!(message.ends_with("this one is ISSUED"), "{message}");
    let (status, wrong) = acs(&server, Method::POST, &format!("{path}/answer"))
        .body(json!({"answerToken": "not-the-token"}))
        .json()
        .await;
    assert_eq!(status, 400);
    assert_eq!(wrong["error"]["code"], "wrong_answer");
    assert_eq!(wrong["error"]["remainingAttempts"], 1);

    let (status, answered) = acs(&server, Method::POST, &format!("{path}/answer"))
        .token(None)
        .body(json!({"answerToken": token}))
        .json()
        .await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["id"], id.as_str());
    assert_eq!(answered["status"], "VERIFIED");
    assert!(answered["answeredAt"].is_string());
    assert_eq!(
        answered["answeredBy"]["actorId"],
        created["actors"][0]["id"]
    );
    for secret in ["userId", "hiddenDetails", "callbackUrl", "actors"] {
        assert!(
            answered.get(secret).is_none(),
            "an answerer sees no {secret}"
        );
    }
    let natively = server.state_of(&id).await;
    assert_eq!(natively["state"], "verified");
    assert_eq!(natively["attempts_left"], 1);

    assert_eq!(
        acs(&server, Method::POST, &format!("{path}/answer"))
            .token(None)
            .body(json!({"answerToken": token}))
            .error()
            .await,
        (400, "answer_rejected".into()),
        "anonymous callers learn nothing"
    );
    assert_eq!(
        acs(&server, Method::POST, &format!("{path}/answer"))
            .body(json!({"answerToken": token}))
            .error()
            .await,
        (409, "already_answered".into())
    );
    let (status, cancelled) = acs(&server, Method::DELETE, &path).json().await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(
        acs(&server, Method::DELETE, &path).error().await,
        (409, "not_cancellable".into())
    );
    assert_eq!(server.state_of(&id).await["state"], "cancelled");
}

#[tokio::test]
async fn native_answers_wake_an_acs_long_poll_and_read_in_acs_names() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-3"}))
        .await;
    let id = id_of(&created);
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    let poll = {
        let request = server
            .http
            .get(server.url(&format!(
                "/compat/acs/v1/challenges/{id}?wait=20&status=ISSUED"
            )))
            .bearer_auth(manager(&server, "acme"));
        tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await })
    };
    assert_eq!(
        server.answer_anonymously(&id, token, true).await.status(),
        200
    );
    let woken = tokio::time::timeout(Duration::from_secs(15), poll)
        .await
        .expect("the long-poll answers once the challenge changes")
        .unwrap()
        .unwrap();
    assert_eq!(woken["status"], "VERIFIED");
    assert_eq!(woken["type"], "TOKEN");

    let declined = server
        .create_ok(json!({"type": "token", "user_id": "u-3"}))
        .await;
    let token = declined["actors"][0]["answer_token"].as_str().unwrap();
    server
        .answer_anonymously(&id_of(&declined), token, false)
        .await;
    let (_, read) = acs(
        &server,
        Method::GET,
        &format!("/challenges/{}", id_of(&declined)),
    )
    .json()
    .await;
    assert_eq!(read["status"], "DECLINED");

    for bad in ["?wait=1&status=issued", "?state=ISSUED", "?wait=x"] {
        assert_eq!(
            acs(&server, Method::GET, &format!("/challenges/{id}{bad}"))
                .error()
                .await,
            (400, "invalid_query".into()),
            "{bad}"
        );
    }
    assert_eq!(
        acs(&server, Method::GET, "/challenges/ch_unknown")
            .error()
            .await,
        (404, "challenge_not_found".into())
    );
}

#[tokio::test]
async fn acs_lists_filter_by_user_status_and_type_a_page_at_a_time() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for user in ["u-a", "u-a", "u-a", "u-b"] {
        let (status, c) = acs(&server, Method::POST, "/challenges")
            .body(json!({"type": "TOKEN", "userId": user}))
            .json()
            .await;
        assert_eq!(status, 201);
        ids.push(id_of(&c));
    }
    acs(&server, Method::DELETE, &format!("/challenges/{}", ids[0]))
        .send()
        .await;
    let count = |query: &'static str| {
        let server = &server;
        async move {
            let (status, list) = acs(server, Method::GET, &format!("/challenges{query}"))
                .json()
                .await;
            assert_eq!(status, 200, "{query}: {list}");
            assert_acs_names(&list);
            list["challenges"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("?userId=u-a").await, 3);
    assert_eq!(count("?userId=u-a&status=CANCELLED").await, 1);
    assert_eq!(count("?userId=u-a&status=ISSUED").await, 2);
    assert_eq!(count("?type=TOKEN").await, 4);
    assert_eq!(count("?type=EMAIL_OTP").await, 0);

    let (_, first) = acs(&server, Method::GET, "/challenges?pageSize=3")
        .json()
        .await;
    assert_eq!(first["challenges"].as_array().unwrap().len(), 3);
    let next = first["nextPageToken"].as_str().expect("a next page");
    let (_, second) = acs(
        &server,
        Method::GET,
        &format!("/challenges?pageSize=3&pageToken={next}"),
    )
    .json()
    .await;
    assert_eq!(second["challenges"].as_array().unwrap().len(), 1);
    assert_eq!(second["nextPageToken"], Value::Null);

    for bad in [
        "?status=cancelled",
        "?type=token",
        "?user_id=u-a",
        "?pageSize=0",
        "?pageToken=nope",
    ] {
        let (status, body) = acs(&server, Method::GET, &format!("/challenges{bad}"))
            .json()
            .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "invalid_query", "{bad}");
    }
    let (_, body) = acs(&server, Method::GET, "/challenges?pageSize=0")
        .json()
        .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("pageSize"), "{message}");
}

#[tokio::test]
async fn acs_refuses_bad_input_clearly_and_changes_nothing() {
    let server = TestServer::start().await;
    let (status, _) = native(&server, Method::POST, "/policies")
        .body(json!({"alias": "native-totp", "type": "totp"}))
        .json()
        .await;
    assert_eq!(status, 201);
    let refusals = [
        (
            json!({"type": "token", "userId": "u"}),
            400,
            "invalid_field",
            "EMAIL_OTP",
        ),
        (
            json!({"type": "TOTP", "userId": "u"}),
            400,
            "type_not_supported",
            "TOTP",
        ),
        (
            json!({"policyAlias": "native-totp", "userId": "u"}),
            400,
            "type_not_supported",
            "TOTP",
        ),
        (
            json!({"type": "TOKEN", "user_id": "u"}),
            400,
            "unknown_field",
            "userId",
        ),
        (json!({"type": "TOKEN"}), 400, "invalid_field", "userId"),
        (json!({"userId": "u"}), 400, "invalid_field", "policyAlias"),
        (
            json!({"policyAlias": "nope", "userId": "u"}),
            404,
            "policy_not_found",
            "",
        ),
        (
            json!({"policyAlias": "Bad Alias", "userId": "u"}),
            400,
            "invalid_alias",
            "policyAlias",
        ),
        (
            json!({"type": "TOKEN", "userId": "u", "ttlSeconds": 999_999_999}),
            400,
            "ttl_out_of_range",
            "ttlSeconds",
        ),
        (
            json!({"type": "TOKEN", "userId": "u", "maxAttempts": 0}),
            400,
            "max_attempts_out_of_range",
            "maxAttempts",
        ),
        (
            json!({"type": "TOKEN", "userId": ""}),
            400,
            "invalid_field",
            "userId",
        ),
        (
            json!({"type": "EMAIL_OTP", "userId": "u"}),
            400,
            "recipient_required",
            "",
        ),
        (
            json!({"type": "TOKEN", "userId": "u", "factorId": "fac_x"}),
            400,
            "unknown_field",
            "factorId",
        ),
    ];
    for (body, status, code, named) in refusals {
        let (got, error) = acs(&server, Method::POST, "/challenges")
            .body(body.clone())
            .json()
            .await;
        assert_eq!(
            (got, error["error"]["code"].as_str().unwrap()),
            (status, code),
            "{body}: {error}"
        );
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{body}: {message}");
        if code == "unknown_field" {
            continue; // the message quotes the field as sent
        }
        for native_name in [
            "user_id",
            "ttl_seconds",
            "max_attempts",
            "email_otp",
            "totp ",
        ] {
            assert!(!message.contains(native_name), "{body}: {message}");
        }
    }
    let malformed = server
        .http
        .post(server.url("/compat/acs/v1/challenges"))
        .bearer_auth(manager(&server, "acme"))
        .header("Content-Type", "application/json")
        .body("{\"type\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(malformed).await, (400, "malformed_json".into()));
    let form = server
        .http
        .post(server.url("/compat/acs/v1/challenges"))
        .bearer_auth(manager(&server, "acme"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("type=TOKEN&userId=u")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(form).await,
        (415, "unsupported_media_type".into())
    );

    for (body, code) in [
        (json!({"alias": "p", "type": "token"}), "invalid_field"),
        (json!({"alias": "p", "type": "PUSH"}), "type_not_supported"),
        (
            json!({"alias": "p", "type": "EMAIL_OTP", "codeAlphabet": "digits"}),
            "invalid_field",
        ),
        (
            json!({"alias": "p", "type": "TOKEN", "ttl_seconds": 60}),
            "unknown_field",
        ),
        (json!({"type": "TOKEN"}), "invalid_field"),
        (json!({"alias": "P Q", "type": "TOKEN"}), "invalid_alias"),
        (
            json!({"alias": "p", "type": "TOKEN", "codeLength": 6}),
            "not_applicable",
        ),
    ] {
        let (status, error) = acs(&server, Method::POST, "/policies")
            .body(body.clone())
            .json()
            .await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(!message.contains("code_length"), "{message}");
    }

    let (_, challenges) = native(&server, Method::GET, "/challenges").json().await;
    assert_eq!(
        challenges["challenges"],
        json!([]),
        "no refusal created one"
    );
    let (_, ids) = acs(&server, Method::GET, "/policies").json().await;
    assert_eq!(ids["ids"], json!(["native-totp"]), "no refusal created one");
    let (_, read) = acs(&server, Method::GET, "/policies/native-totp")
        .json()
        .await;
    assert_eq!(read["type"], "TOTP", "other types read upper-cased");
}

#[tokio::test]
async fn acs_routes_need_the_native_scopes_and_keep_tenants_apart() {
    let server = TestServer::start().await;
    let (_, created) = acs(&server, Method::POST, "/challenges")
        .body(json!({"type": "TOKEN", "userId": "u"}))
        .json()
        .await;
    let id = id_of(&created);
    let (status, _) = acs(&server, Method::POST, "/policies")
        .body(json!({"alias": "p1", "type": "TOKEN"}))
        .json()
        .await;
    assert_eq!(status, 201);
    let (_, config) = acs(&server, Method::GET, "/configuration").json().await;

    let unrelated = Some(server.token("acme", "challenge:webhook:get"));
    let c = format!("/challenges/{id}");
    let routes = [
        (
            Method::POST,
            "/challenges".to_string(),
            Some(json!({"type": "TOKEN", "userId": "u"})),
        ),
        (Method::GET, "/challenges".into(), None),
        (Method::GET, c.clone(), None),
        (Method::DELETE, c.clone(), None),
        (
            Method::POST,
            format!("{c}/answer"),
            Some(json!({"answerToken": "x"})),
        ),
        (Method::POST, format!("{c}/complete"), None),
        (Method::POST, format!("{c}/resend"), None),
        (
            Method::POST,
            "/policies".into(),
            Some(json!({"alias": "p2", "type": "TOKEN"})),
        ),
        (Method::GET, "/policies".into(), None),
        (Method::GET, "/policies/p1".into(), None),
        (
            Method::PUT,
            "/policies/p1".into(),
            Some(json!({"type": "TOKEN", "ttlSeconds": 60})),
        ),
        (Method::DELETE, "/policies/p1".into(), None),
        (Method::GET, "/configuration".into(), None),
        (Method::PUT, "/configuration".into(), Some(config.clone())),
    ];
    for (method, path, body) in &routes {
        let mut call = acs(&server, method.clone(), path)
            .token(unrelated.clone())
            .if_match("*");
        if let Some(body) = body {
            call = call.body(body.clone());
        }
        assert_eq!(
            call.error().await,
            (403, "forbidden".into()),
            "{method} {path}"
        );
        let mut call = acs(&server, method.clone(), path).token(None);
        if let Some(body) = body {
            call = call.body(body.clone());
        }
        if path.ends_with("/answer") {
            continue; // anonymous answers are allowed
        }
        let response = call.send().await;
        assert!(response.headers().contains_key("www-authenticate"));
        assert_eq!(
            error_code(response).await,
            (401, "unauthorized".into()),
            "{method} {path}"
        );
    }

    let other = Some(manager(&server, "globex"));
    for (method, path, code) in [
        (Method::GET, c.clone(), "challenge_not_found"),
        (Method::DELETE, c.clone(), "challenge_not_found"),
        (Method::POST, format!("{c}/complete"), "challenge_not_found"),
        (Method::POST, format!("{c}/resend"), "challenge_not_found"),
        (Method::GET, "/policies/p1".into(), "policy_not_found"),
        (Method::DELETE, "/policies/p1".into(), "policy_not_found"),
    ] {
        assert_eq!(
            acs(&server, method.clone(), &path)
                .token(other.clone())
                .error()
                .await,
            (404, code.into()),
            "{method} {path}"
        );
    }
    assert_eq!(
        acs(&server, Method::POST, &format!("{c}/answer"))
            .token(other.clone())
            .body(json!({"answerToken": "x"}))
            .error()
            .await,
        (404, "challenge_not_found".into())
    );
    assert_eq!(
        acs(&server, Method::PUT, "/policies/p1")
            .token(other.clone())
            .if_match("1")
            .body(json!({"type": "TOKEN"}))
            .error()
            .await,
        (404, "policy_not_found".into())
    );
    let (_, list) = acs(&server, Method::GET, "/challenges")
        .token(other.clone())
        .json()
        .await;
    assert_eq!(list["challenges"], json!([]));
    let (_, ids) = acs(&server, Method::GET, "/policies")
        .token(other)
        .json()
        .await;
    assert_eq!(ids["ids"], json!([]));

    let (_, still) = acs(&server, Method::GET, &c).json().await;
    assert_eq!(still["status"], "ISSUED");
    assert_eq!(still["remainingAttempts"], created["remainingAttempts"]);
    let (_, policy) = acs(&server, Method::GET, "/policies/p1").json().await;
    assert_eq!(policy["version"], 1);
}

#[tokio::test]
async fn acs_policies_are_listed_by_id_and_replaced_under_optimistic_locking() {
    let server = TestServer::start().await;
    for alias in ["a-1", "a-2", "a-3"] {
        let response = acs(&server, Method::POST, "/policies")
            .body(json!({"alias": alias, "type": "TOKEN", "ttlSeconds": 120}))
            .send()
            .await;
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["etag"], "\"1\"");
        assert_eq!(
            response.headers()["location"],
            format!("/compat/acs/v1/policies/{alias}").as_str()
        );
    }
    assert_eq!(
        acs(&server, Method::POST, "/policies")
            .body(json!({"alias": "a-1", "type": "TOKEN"}))
            .error()
            .await,
        (409, "alias_taken".into())
    );
    let (_, first) = acs(&server, Method::GET, "/policies?pageSize=2")
        .json()
        .await;
    assert_eq!(
        first,
        json!({"ids": ["a-1", "a-2"], "nextPageToken": "a-2"})
    );
    let (_, second) = acs(&server, Method::GET, "/policies?pageSize=2&pageToken=a-2")
        .json()
        .await;
    assert_eq!(second, json!({"ids": ["a-3"], "nextPageToken": null}));

    let replace = json!({"type": "TOKEN", "ttlSeconds": 60, "oneActivePerUser": true});
    assert_eq!(
        acs(&server, Method::PUT, "/policies/a-1")
            .body(replace.clone())
            .error()
            .await,
        (428, "precondition_required".into())
    );
    let mut versioned = replace.clone();
    versioned["version"] = json!(1);
    let (status, replaced) = acs(&server, Method::PUT, "/policies/a-1")
        .body(versioned.clone())
        .json()
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["version"], 2);
    assert_eq!(replaced["ttlSeconds"], 60);
    assert_eq!(replaced["oneActivePerUser"], true);
    assert_acs_names(&replaced);
    let (status, stale) = acs(&server, Method::PUT, "/policies/a-1")
        .body(versioned)
        .json()
        .await;
    assert_eq!(status, 409, "a stale body version");
    assert_eq!(stale["error"]["code"], "version_conflict");
    assert_eq!(stale["error"]["currentVersion"], 2);
    let (status, stale) = acs(&server, Method::PUT, "/policies/a-1")
        .if_match("\"1\"")
        .body(replace.clone())
        .json()
        .await;
    assert_eq!(status, 412, "a stale If-Match");
    assert_eq!(stale["error"]["currentVersion"], 2);
    let mut renamed = replace.clone();
    renamed["alias"] = json!("other");
    assert_eq!(
        acs(&server, Method::PUT, "/policies/a-1")
            .if_match("\"2\"")
            .body(renamed)
            .error()
            .await,
        (400, "invalid_field".into())
    );
    let response = acs(&server, Method::PUT, "/policies/a-1")
        .if_match("\"2\"")
        .body(json!({"type": "TOKEN", "maxAttempts": 2}))
        .send()
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"3\"");
    let (_, natively) = native(&server, Method::GET, "/policies/a-1").json().await;
    assert_eq!(natively["version"], 3);
    assert_eq!(natively["max_attempts"], 2);
    assert_eq!(natively["ttl_seconds"], Value::Null, "a full replace");

    // A native policy reads in ACS names and creates through ACS.
    let (status, _) = native(&server, Method::POST, "/policies")
        .body(json!({"alias": "n-otp", "type": "email_otp",
            "code_alphabet": "alphanumeric", "resend_mode": "rotate"}))
        .json()
        .await;
    assert_eq!(status, 201);
    let (_, read) = acs(&server, Method::GET, "/policies/n-otp").json().await;
    assert_eq!(read["type"], "EMAIL_OTP");
    assert_eq!(read["codeAlphabet"], "ALPHANUMERIC");
    assert_eq!(read["resendMode"], "ROTATE");
    assert_acs_names(&read);
    native(&server, Method::POST, "/policies")
        .body(json!({"alias": "n-token", "type": "token", "max_attempts": 2}))
        .send()
        .await;
    let (status, created) = acs(&server, Method::POST, "/challenges")
        .body(json!({"policyAlias": "n-token", "userId": "u"}))
        .json()
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["type"], "TOKEN");
    assert_eq!(created["policyAlias"], "n-token");
    assert_eq!(created["remainingAttempts"], 2);

    let response = acs(&server, Method::DELETE, "/policies/a-2").send().await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        acs(&server, Method::GET, "/policies/a-2").error().await,
        (404, "policy_not_found".into())
    );
    assert_eq!(
        acs(&server, Method::DELETE, "/policies/a-3")
            .if_match("\"9\"")
            .error()
            .await,
        (412, "version_conflict".into())
    );
    let (_, ids) = acs(&server, Method::GET, "/policies").json().await;
    assert_eq!(ids["ids"], json!(["a-1", "a-3", "n-otp", "n-token"]));
}

#[tokio::test]
async fn acs_configuration_reads_and_replaces_every_property_in_acs_names() {
    let server = TestServer::start().await;
    let response = acs(&server, Method::GET, "/configuration").send().await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"0\"");
    let config: Value = response.json().await.unwrap();
    assert_acs_names(&config);
    assert_eq!(config["defaultTtlSeconds"], 300);
    assert_eq!(config["version"], 0);
    assert_eq!(config["updatedAt"], Value::Null);

    let mut changed = config.clone();
    changed["defaultTtlSeconds"] = json!(120);
    let mut snake = changed.clone();
    snake["default_ttl_seconds"] = json!(120);
    let mut missing = changed.clone();
    missing.as_object_mut().unwrap().remove("maxAttempts");
    let mut too_long = changed.clone();
    too_long["defaultTtlSeconds"] = json!(1_000_000_000);
    for (body, status, code) in [
        (missing, 400, "invalid_field"),
        (too_long, 400, "out_of_range"),
        (snake, 400, "unknown_field"),
    ] {
        let (got, error) = acs(&server, Method::PUT, "/configuration")
            .if_match("\"0\"")
            .body(body)
            .json()
            .await;
        assert_eq!(
            (got, error["error"]["code"].as_str().unwrap()),
            (status, code),
            "{error}"
        );
        let message = error["error"]["message"].as_str().unwrap();
        if code == "unknown_field" {
            assert!(message.contains("`default_ttl_seconds`"), "{message}");
        } else {
            assert!(!message.contains("_seconds"), "{message}");
        }
    }
    let mut unversioned = changed.clone();
    unversioned.as_object_mut().unwrap().remove("version");
    assert_eq!(
        acs(&server, Method::PUT, "/configuration")
            .body(unversioned)
            .error()
            .await,
        (428, "precondition_required".into())
    );
    let (_, unchanged) = native(&server, Method::GET, "/configuration").json().await;
    assert_eq!(unchanged["version"], 0, "no refusal changed it");

    let (status, replaced) = acs(&server, Method::PUT, "/configuration")
        .body(changed.clone())
        .json()
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["version"], 1);
    assert_eq!(replaced["defaultTtlSeconds"], 120);
    assert!(replaced["updatedAt"].is_string());
    let (_, natively) = native(&server, Method::GET, "/configuration").json().await;
    assert_eq!(natively["default_ttl_seconds"], 120);
    let (status, stale) = acs(&server, Method::PUT, "/configuration")
        .body(changed.clone())
        .json()
        .await;
    assert_eq!(status, 409);
    assert_eq!(stale["error"]["currentVersion"], 1);
    assert_eq!(
        acs(&server, Method::PUT, "/configuration")
            .if_match("\"0\"")
            .body(changed)
            .error()
            .await,
        (412, "version_conflict".into())
    );

    let (_, created) = acs(&server, Method::POST, "/challenges")
        .body(json!({"type": "TOKEN", "userId": "u"}))
        .json()
        .await;
    let created_at = OffsetDateTime::parse(created["createdAt"].as_str().unwrap(), &Rfc3339);
    let expires_at = OffsetDateTime::parse(created["expiresAt"].as_str().unwrap(), &Rfc3339);
    assert_eq!(
        (expires_at.unwrap() - created_at.unwrap()).whole_seconds(),
        120,
        "the next create takes the new default"
    );
}

#[tokio::test]
async fn acs_requests_count_under_the_acs_face_and_stay_out_of_the_native_document() {
    let server = TestServer::start().await;
    let response = acs(&server, Method::PATCH, "/challenges").send().await;
    assert_eq!(response.headers()["allow"], "GET, POST");
    assert_eq!(
        error_code(response).await,
        (405, "method_not_allowed".into())
    );
    let (status, _) = acs(&server, Method::POST, "/challenges")
        .body(json!({"type": "TOKEN", "userId": "u"}))
        .json()
        .await;
    assert_eq!(status, 201);
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = "http_request_duration_seconds_bucket{face=\"acs\",method=\"POST\",\
                route=\"/compat/acs/v1/challenges\",status=\"201\"";
    assert!(metrics.contains(line), "metrics lack {line}");
    let document: Value = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.keys().all(|p| !p.starts_with("/compat")));
    assert!(paths.contains_key("/api/v1/challenges"));
}

#[tokio::test]
async fn sms_codes_and_email_links_made_through_acs_answer_them() {
    let sink = SmtpSink::start().await;
    let gateway = HttpSink::start();
    let url = gateway.url("/send");
    let server = TestServer::start_with(|s| {
        mail_to(s, sink.port);
        s.sms.gateway_url = url.clone();
        s.sms.format = challenge_server::config::SmsFormat::Json;
    })
    .await;
    let (status, sms) = acs(&server, Method::POST, "/challenges")
        .body(json!({"type": "SMS_OTP", "userId": "u-1",
            "recipient": {"phone": "+15551234567"}}))
        .json()
        .await;
    assert_eq!(status, 201, "{sms}");
    assert_eq!(sms["delivery"][0]["channel"], "SMS");
    let id = id_of(&sms);
    assert_eq!(server.state_of(&id).await["type"], "sms_otp");
    let request = gateway.wait_for(1).await.remove(0);
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    let code = code_in(sent["body"].as_str().unwrap(), 6);
    let (status, answered) = acs(&server, Method::POST, &format!("/challenges/{id}/answer"))
        .body(json!({"code": code}))
        .json()
        .await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["status"], "VERIFIED");
    let sent = eventually(Duration::from_secs(20), || async {
        let (_, c) = acs(&server, Method::GET, &format!("/challenges/{id}"))
            .json()
            .await;
        (c["delivery"][0]["status"] == "SENT").then_some(c)
    })
    .await;
    assert_eq!(sent["delivery"][0]["attempts"], 1);

    let (status, link) = acs(&server, Method::POST, "/challenges")
        .body(json!({"type": "EMAIL_LINK", "userId": "u-2",
            "recipient": {"email": "bob@example.com"}}))
        .json()
        .await;
    assert_eq!(status, 201, "{link}");
    assert!(
        link["actors"][0].get("answerToken").is_none(),
        "the link is mailed only"
    );
    let id = id_of(&link);
    let mail = sink.wait_for(1).await.remove(0);
    let text = mail.part("text/plain").unwrap();
    let token = text
        .split_whitespace()
        .find_map(|w| w.split_once("?t=").map(|(_, t)| t.to_string()))
        .unwrap_or_else(|| panic!("no link in {text}"));
    let (status, answered) = acs(&server, Method::POST, &format!("/challenges/{id}/answer"))
        .token(None)
        .body(json!({"answerToken": token}))
        .json()
        .await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["status"], "VERIFIED");
    assert_eq!(server.state_of(&id).await["state"], "verified");
}

#[tokio::test]
async fn acs_reads_expired_and_failed_challenges_and_refuses_them_an_answer() {
    let server = TestServer::start().await;
    let (_, short) = acs(&server, Method::POST, "/challenges")
        .body(json!({"type": "TOKEN", "userId": "u", "ttlSeconds": 1}))
        .json()
        .await;
    let path = format!("/challenges/{}", id_of(&short));
    let expired = eventually(Duration::from_secs(10), || async {
        let (_, c) = acs(&server, Method::GET, &path).json().await;
        (c["status"] == "EXPIRED").then_some(c)
    })
    .await;
    assert_eq!(expired["type"], "TOKEN");
    let token = short["actors"][0]["answerToken"].as_str().unwrap();
    assert_eq!(
        acs(&server, Method::POST, &format!("{path}/answer"))
            .body(json!({"answerToken": token}))
            .error()
            .await,
        (409, "expired".into())
    );

    let (_, once) = acs(&server, Method::POST, "/challenges")
        .body(json!({"type": "TOKEN", "userId": "u", "maxAttempts": 1}))
        .json()
        .await;
    let path = format!("/challenges/{}", id_of(&once));
    let (status, wrong) = acs(&server, Method::POST, &format!("{path}/answer"))
        .body(json!({"answerToken": "wrong"}))
        .json()
        .await;
    assert_eq!(status, 400);
    assert_eq!(wrong["error"]["remainingAttempts"], 0);
    let (_, failed) = acs(&server, Method::GET, &path).json().await;
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["remainingAttempts"], 0);
    assert_eq!(server.state_of(&id_of(&once)).await["state"], "failed");
    let token = once["actors"][0]["answerToken"].as_str().unwrap();
    assert_eq!(
        acs(&server, Method::POST, &format!("{path}/answer"))
            .body(json!({"answerToken": token}))
            .error()
            .await,
        (409, "failed".into())
    );
    let (_, list) = acs(&server, Method::GET, "/challenges?status=FAILED")
        .json()
        .await;
    assert_eq!(list["challenges"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_acs_create_with_an_idempotency_key_replays_and_refuses_another_request() {
    let server = TestServer::start().await;
    let body = json!({"type": "TOKEN", "userId": "u", "idempotencyKey": "req-42"});
    let (status, first) = acs(&server, Method::POST, "/challenges")
        .body(body.clone())
        .json()
        .await;
    assert_eq!(status, 201);
    assert!(first["actors"][0]["answerToken"].is_string());
    let replay = acs(&server, Method::POST, "/challenges")
        .body(body.clone())
        .send()
        .await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replayed: Value = replay.json().await.unwrap();
    assert_eq!(replayed["id"], first["id"]);
    assert!(
        replayed["actors"][0].get("answerToken").is_none(),
        "secrets are shown once"
    );
    // The same key and request through the native API: the same challenge.
    let (status, natively) = native(&server, Method::POST, "/challenges")
        .body(json!({"type": "token", "user_id": "u", "idempotency_key": "req-42"}))
        .json()
        .await;
    assert_eq!(status, 200);
    assert_eq!(natively["id"], first["id"]);

    assert_eq!(
        acs(&server, Method::POST, "/challenges")
            .body(json!({"type": "TOKEN", "userId": "other", "idempotencyKey": "req-42"}))
            .error()
            .await,
        (409, "idempotency_conflict".into())
    );
    let mismatch = server
        .http
        .post(server.url("/compat/acs/v1/challenges"))
        .bearer_auth(manager(&server, "acme"))
        .header("Idempotency-Key", "req-43")
        .json(&body)
        .send()
        .await
        .unwrap();
    let error: Value = mismatch.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_field");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("idempotencyKey differs"), "{message}");
    let (_, list) = acs(&server, Method::GET, "/challenges").json().await;
    assert_eq!(list["challenges"].as_array().unwrap().len(), 1);
}
