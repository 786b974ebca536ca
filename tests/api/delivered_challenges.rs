//! Delivery challenges end to end with real transports: codes by email through a real
//! SMTP server, by SMS through a local gateway, magic links opened in chromium, resends,
//! and signed status webhooks.

use std::time::Duration;

use challenge_server::config::{Settings, SmsFormat, SmtpTls};
use challenge_server::delivery::webhook;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sinks::{closed_port, HttpSink, Reply, SmtpSink};

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

async fn answer_code(server: &TestServer, id: &str, code: &str) -> reqwest::Response {
    server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"code": code}),
        )
        .await
}

async fn delivery_status(server: &TestServer, id: &str, status: &'static str) -> Value {
    eventually(Duration::from_secs(20), || async {
        let c = server.state_of(id).await;
        (c["delivery"][0]["status"] == status).then_some(c)
    })
    .await
}

#[tokio::test]
async fn an_emailed_code_arrives_and_answers_the_challenge() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| mail_to(s, sink.port)).await;
    let created = server
        .create_ok(json!({"type": "email_otp", "user_id": "u-1", "recipient": {"email": "alice@example.com"},
            "details": {"message": "Sign in to Example"}}))
        .await;
    let id = created["id"].as_str().unwrap();
    assert!(
        created["actors"][0].get("answer_token").is_none(),
        "the code goes to the recipient only"
    );
    assert!(created["actors"][0].get("answer_url").is_none());
    assert_eq!(created["delivery"][0]["to"], "a•••@example.com");

    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.rcpt_tos, vec!["alice@example.com".to_string()]);
    assert_eq!(mail.content_type, "multipart/alternative");
    let text = mail.part("text/plain").unwrap();
    let code = code_in(text, 6);
    assert!(mail.part("text/html").unwrap().contains(&code));
    assert!(!created.to_string().contains(&code));
    let sent = delivery_status(&server, id, "sent").await;
    assert_eq!(sent["delivery"][0]["attempts"], 1);
    assert!(!sent.to_string().contains(&code));

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = answer_code(&server, id, wrong).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wrong_answer");
    assert_eq!(body["error"]["attempts_left"], 4);
    let no_code = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"allowed": true}),
        )
        .await;
    assert_eq!(error_code(no_code).await, (400, "code_required".into()));
    let anonymous = server
        .post(
            None,
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"code": code}),
        )
        .await;
    assert_eq!(
        anonymous.status(),
        400,
        "codes are relayed by the calling service"
    );
    let ok = answer_code(&server, id, &format!("{} {}", &code[..3], &code[3..])).await;
    assert_eq!(ok.status(), 200);
    let done = server.state_of(id).await;
    assert_eq!(done["state"], "verified");
    assert_eq!(done["answered_by"]["user_id"], "u-1");
    assert_eq!(
        error_code(answer_code(&server, id, &code).await).await,
        (409, "already_answered".into())
    );
}

#[tokio::test]
async fn each_actor_gets_its_own_code_and_the_first_right_one_wins() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| mail_to(s, sink.port)).await;
    let created = server
        .create_ok(json!({"type": "email_otp", "user_id": "u-1", "actors": [
            {"user_id": "alice", "recipient": {"email": "alice@example.com"}},
            {"user_id": "bob", "recipient": {"email": "bob@example.com"}}]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let mails = sink.wait_for(2).await;
    let code_for = |who: &str| {
        let mail = mails
            .iter()
            .find(|m| m.rcpt_tos[0].starts_with(who))
            .unwrap();
        code_in(mail.part("text/plain").unwrap(), 6)
    };
    let (alice, bob) = (code_for("alice"), code_for("bob"));
    assert_ne!(alice, bob);
    assert_eq!(answer_code(&server, id, &bob).await.status(), 200);
    assert_eq!(server.state_of(id).await["answered_by"]["user_id"], "bob");
    assert_eq!(answer_code(&server, id, &alice).await.status(), 409);
}

#[tokio::test]
async fn with_smtp_down_delivery_fails_visibly_and_a_resend_delivers_once_it_is_back() {
    let port = closed_port();
    let server = TestServer::start_with(|s| {
        mail_to(s, port);
        s.delivery.resend_cooldown_seconds = 0;
    })
    .await;
    let created = server
        .create_ok(json!({"type": "email_otp", "user_id": "u-1", "recipient": {"email": "alice@example.com"}}))
        .await;
    let id = created["id"].as_str().unwrap();
    let failed = delivery_status(&server, id, "failed").await;
    assert_eq!(failed["delivery"][0]["attempts"], 3);
    assert!(failed["delivery"][0]["last_error"]
        .as_str()
        .unwrap()
        .starts_with("transport"));
    assert_eq!(failed["state"], "issued");

    let sink = SmtpSink::start_on(port).await;
    let resent = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(resent.status(), 202);
    let mail = sink.wait_for(1).await.remove(0);
    let code = code_in(mail.part("text/plain").unwrap(), 6);
    delivery_status(&server, id, "sent").await;
    assert_eq!(answer_code(&server, id, &code).await.status(), 200);
}

#[tokio::test]
async fn a_resend_sends_the_same_code_with_the_same_expiry_within_its_rules() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| {
        mail_to(s, sink.port);
        s.delivery.resend_cooldown_seconds = 0;
        s.delivery.max_resends = 1;
    })
    .await;
    let created = server
        .create_ok(json!({"type": "email_otp", "user_id": "u-1", "recipient": {"email": "alice@example.com"}}))
        .await;
    let id = created["id"].as_str().unwrap();
    let first = code_in(sink.wait_for(1).await[0].part("text/plain").unwrap(), 6);
    let wrong = if first == "000000" {
        "111111"
    } else {
        "000000"
    };
    answer_code(&server, id, wrong).await;
    let admin = server.admin();
    let path = format!("/api/v1/challenges/{id}/resend");
    let resend = || server.post(Some(&admin), &path, json!({}));
    let r = resend().await;
    assert_eq!(r.status(), 202);
    let after: Value = r.json().await.unwrap();
    assert_eq!(after["expires_at"], created["expires_at"]);
    assert_eq!(
        after["attempts_left"], 4,
        "a resend never resets the attempts"
    );
    assert_eq!(after["resends_left"], 0);
    let second = code_in(sink.wait_for(2).await[1].part("text/plain").unwrap(), 6);
    assert_eq!(first, second);
    assert_eq!(
        error_code(resend().await).await,
        (409, "resend_limit".into())
    );
    assert_eq!(answer_code(&server, id, &first).await.status(), 200);
    assert_eq!(
        error_code(resend().await).await,
        (409, "not_resendable".into())
    );
}

#[tokio::test]
async fn a_resend_within_the_cooldown_is_refused_with_retry_after() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| mail_to(s, sink.port)).await;
    let created = server
        .create_ok(json!({"type": "email_otp", "user_id": "u-1", "recipient": {"email": "alice@example.com"}}))
        .await;
    let id = created["id"].as_str().unwrap();
    let r = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/resend"),
            json!({}),
        )
        .await;
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(error_code(r).await, (429, "resend_cooldown".into()));
    let token = server
        .create(&server.admin(), json!({"type": "token", "user_id": "u-1"}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let r = server
        .post(
            Some(&server.admin()),
            &format!(
                "/api/v1/challenges/{}/resend",
                token["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(error_code(r).await, (409, "not_deliverable".into()));
}

#[tokio::test]
async fn a_rotating_policy_resends_a_new_code_and_the_old_one_stops_working() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| mail_to(s, sink.port)).await;
    let admin = server.token("acme", &format!("{ALL_SCOPES} challenge:policy:post"));
    let r = server
        .post(Some(&admin), "/api/v1/policies", json!({"alias": "rotating", "type": "email_otp", "code_length": 8,
            "code_alphabet": "alphanumeric", "resend_mode": "rotate", "resend_cooldown_seconds": 0}))
        .await;
    assert_eq!(r.status(), 201);
    let created = server
        .create_ok(json!({"policy": "rotating", "user_id": "u-1", "recipient": {"email": "alice@example.com"}}))
        .await;
    let id = created["id"].as_str().unwrap();
    let word = |text: &str| {
        text.split(|c: char| !c.is_ascii_alphanumeric())
            .find(|w| {
                w.len() == 8
                    && w.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                    && w.chars()
                        .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            })
            .unwrap_or_else(|| panic!("no 8-character code in {text:?}"))
            .to_string()
    };
    let first = word(sink.wait_for(1).await[0].part("text/plain").unwrap());
    let r = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let second = word(sink.wait_for(2).await[1].part("text/plain").unwrap());
    assert_ne!(first, second);
    assert_eq!(
        error_code(answer_code(&server, id, &first).await).await.1,
        "wrong_answer"
    );
    assert_eq!(
        answer_code(&server, id, &second.to_lowercase())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn send_false_keeps_the_challenge_undelivered_until_a_resend() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| mail_to(s, sink.port)).await;
    let created = server
        .create_ok(json!({"type": "email_otp", "user_id": "u-1", "recipient": {"email": "alice@example.com"}, "send": false}))
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["delivery"][0]["status"], "not_sent");
    let r = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(
        r.status(),
        202,
        "no cooldown applies to a challenge never sent"
    );
    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(
        answer_code(&server, id, &code_in(mail.part("text/plain").unwrap(), 6))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_recipient_gets_at_most_the_daily_cap() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| {
        mail_to(s, sink.port);
        s.delivery.per_recipient_daily_cap = 2;
    })
    .await;
    let body = json!({"type": "email_otp", "user_id": "u-1", "recipient": {"email": "victim@example.com"}});
    server.create_ok(body.clone()).await;
    server.create_ok(body.clone()).await;
    let third = server.create(&server.admin(), body).await;
    assert!(third.headers().contains_key("retry-after"));
    assert_eq!(error_code(third).await, (429, "recipient_limit".into()));
    let list: Value = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["challenges"].as_array().unwrap().len(), 2);
    assert_eq!(sink.wait_for(2).await.len(), 2);
    server.create_ok(json!({"type": "email_otp", "user_id": "u-1", "recipient": {"email": "other@example.com"}})).await;
}

#[tokio::test]
async fn an_sms_code_goes_through_a_json_gateway_signed() {
    let gateway = HttpSink::start();
    let secret = "gateway-signing-secret-0123456789abcdef";
    let url = gateway.url("/send");
    let server = TestServer::start_with(|s| {
        s.sms.gateway_url = url.clone();
        s.sms.format = SmsFormat::Json;
        s.sms.signing_secret = challenge_server::config::Secret::new(secret);
    })
    .await;
    let created = server
        .create_ok(
            json!({"type": "sms_otp", "user_id": "u-1", "recipient": {"phone": "+15551234567"}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["delivery"][0]["to"], "+1••••••4567");
    delivery_status(&server, id, "sent").await;
    let request = gateway.requests().remove(0);
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["to"], "+15551234567");
    assert_eq!(body["challenge_id"], id);
    let header = request.header("x-challenge-signature").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(webhook::verify(
        secret.as_bytes(),
        header,
        &request.body,
        now,
        300
    ));
    let code = code_in(body["body"].as_str().unwrap(), 6);
    assert_eq!(answer_code(&server, id, &code).await.status(), 200);
}

#[tokio::test]
async fn an_sms_code_goes_through_a_twilio_style_gateway() {
    let gateway = HttpSink::start();
    let url = gateway.url("/2010-04-01/Accounts/AC123/Messages.json");
    let server = TestServer::start_with(|s| {
        s.sms.gateway_url = url.clone();
        s.sms.format = SmsFormat::Twilio;
        s.sms.from = "+15550000000".into();
        s.sms.username = "AC123".into();
        s.sms.password = challenge_server::config::Secret::new("auth-token");
    })
    .await;
    gateway.reply_with([Reply::status(201).body(r#"{"sid":"SM1"}"#)]);
    let created = server
        .create_ok(
            json!({"type": "sms_otp", "user_id": "u-1", "recipient": {"phone": "+447700900123"}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    delivery_status(&server, id, "sent").await;
    let request = gateway.requests().remove(0);
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(field("To"), "+447700900123");
    assert_eq!(field("From"), "+15550000000");
    assert!(request
        .header("authorization")
        .unwrap()
        .starts_with("Basic "));
    assert_eq!(
        answer_code(&server, id, &code_in(&field("Body"), 6))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn state_changes_are_posted_signed_to_the_callback_url_with_retries() {
    let hook = HttpSink::start();
    hook.reply_with([Reply::status(503)]);
    let server = TestServer::start_with(|s| {
        s.actions.allow_private = true;
        s.webhooks.backoff_ms = 10;
    })
    .await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "callback_url": hook.url("/hooks/challenge")}))
        .await;
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    assert_eq!(
        server.answer_anonymously(id, token, true).await.status(),
        200
    );
    let requests = eventually(Duration::from_secs(20), || async {
        let r = hook.requests();
        (r.len() >= 2).then_some(r)
    })
    .await;
    assert_eq!(
        requests[0].body, requests[1].body,
        "the 503 was retried with the same body"
    );
    let body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(body["id"], id);
    assert_eq!(body["type"], "token");
    assert_eq!(body["user_id"], "u-1");
    assert_eq!(body["state"], "verified");
    assert_eq!(body["previous_state"], "issued");
    assert_eq!(body["answered_by"]["user_id"], "u-1");
    assert!(body["at"].is_string());

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
    let secret = secret["secret"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = requests[1].header("x-challenge-signature").unwrap();
    assert!(webhook::verify(
        secret.as_bytes(),
        header,
        &requests[1].body,
        now,
        300
    ));
    assert!(!webhook::verify(
        secret.as_bytes(),
        header,
        b"{\"state\":\"forged\"}",
        now,
        300
    ));
    let other: Value = server
        .http
        .get(server.url("/api/v1/webhooks/secret"))
        .bearer_auth(server.token("globex", "challenge:webhook:get"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(
        other["secret"], secret,
        "each tenant signs with its own secret"
    );

    server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/complete"),
            json!({}),
        )
        .await;
    let completed = eventually(Duration::from_secs(20), || async {
        let r = hook.requests();
        (r.len() >= 3).then_some(r)
    })
    .await;
    let body: Value = serde_json::from_slice(&completed[2].body).unwrap();
    assert_eq!(
        (body["state"].as_str(), body["previous_state"].as_str()),
        (Some("completed"), Some("verified"))
    );
}

#[tokio::test]
async fn bad_delivery_requests_are_refused_and_nothing_is_sent_or_stored() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| mail_to(s, sink.port)).await;
    let policy_admin = server.token("acme", &format!("{ALL_SCOPES} challenge:policy:post"));
    let r = server
        .post(Some(&policy_admin), "/api/v1/policies", json!({"alias": "broken", "type": "email_otp",
            "templates": {"default_locale": "en", "locales": {"en": {"subject": "Your code {{ code"}}}}))
        .await;
    let refused = error_code(r).await;
    assert_eq!(
        (refused.0, refused.1.as_str()),
        (400, "template_error"),
        "a template that does not parse is refused"
    );
    let r = server
        .post(
            Some(&policy_admin),
            "/api/v1/policies",
            json!({"alias": "corp", "type": "email_otp",
            "conditions": {"email_domains": ["corp.example"]}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = server
        .post(
            Some(&policy_admin),
            "/api/v1/policies",
            json!({"alias": "uk", "type": "sms_otp",
            "conditions": {"phone_prefixes": ["+44"]}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "no recipient",
            json!({"type": "email_otp", "user_id": "u"}),
            400,
            "recipient_required",
        ),
        (
            "phone for email",
            json!({"type": "email_otp", "user_id": "u", "recipient": {"phone": "+15551234567"}}),
            400,
            "recipient_required",
        ),
        (
            "bad email",
            json!({"type": "email_otp", "user_id": "u", "recipient": {"email": "not-an-address"}}),
            400,
            "invalid_email",
        ),
        (
            "header injection",
            json!({"type": "email_otp", "user_id": "u", "recipient": {"email": "a@example.com\r\nBcc: x@evil.example"}}),
            400,
            "invalid_field",
        ),
        (
            "injection in details",
            json!({"type": "email_otp", "user_id": "u", "recipient": {"email": "a@example.com"}, "details": {"message": "hi\r\nBcc: x@evil.example"}}),
            400,
            "invalid_field",
        ),
        (
            "bad phone",
            json!({"type": "sms_otp", "user_id": "u", "recipient": {"phone": "5551234567"}}),
            400,
            "invalid_phone",
        ),
        (
            "sms not configured",
            json!({"type": "sms_otp", "user_id": "u", "recipient": {"phone": "+15551234567"}}),
            400,
            "channel_not_configured",
        ),
        (
            "recipient on token",
            json!({"type": "token", "user_id": "u", "recipient": {"email": "a@example.com"}}),
            400,
            "invalid_field",
        ),
        (
            "send on token",
            json!({"type": "token", "user_id": "u", "send": false}),
            400,
            "invalid_field",
        ),
        (
            "actor without recipient",
            json!({"type": "email_otp", "user_id": "u", "actors": [{"user_id": "a", "recipient": {"email": "a@example.com"}}, {"user_id": "b"}]}),
            400,
            "recipient_required",
        ),
        (
            "refused policy",
            json!({"policy": "broken", "user_id": "u", "recipient": {"email": "a@example.com"}}),
            404,
            "policy_not_found",
        ),
        (
            "domain not allowed",
            json!({"policy": "corp", "user_id": "u", "recipient": {"email": "a@example.com"}}),
            400,
            "recipient_not_allowed",
        ),
        (
            "country not allowed",
            json!({"policy": "uk", "user_id": "u", "recipient": {"phone": "+15551234567"}}),
            400,
            "recipient_not_allowed",
        ),
        (
            "oversize details",
            json!({"type": "email_otp", "user_id": "u", "recipient": {"email": "a@example.com"}, "details": {"message": "m".repeat(1025)}}),
            400,
            "field_too_long",
        ),
        (
            "bad locale",
            json!({"type": "email_otp", "user_id": "u", "recipient": {"email": "a@example.com"}, "locale": "en_US!"}),
            400,
            "invalid_field",
        ),
    ];
    for (name, body, status, code) in cases {
        let r = server.create(&server.admin(), body).await;
        assert_eq!(error_code(r).await, (status, code.to_string()), "{name}");
    }
    let list: Value = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["challenges"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
    // A good one still goes through, and it is the only message the sink ever gets.
    server
        .create_ok(
            json!({"policy": "corp", "user_id": "u", "recipient": {"email": "a@corp.example"}}),
        )
        .await;
    let mails = sink.wait_for(1).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_tos, vec!["a@corp.example".to_string()]);
}

#[tokio::test]
async fn a_policys_callback_url_serves_challenges_that_name_none() {
    let hook = HttpSink::start();
    let server = TestServer::start_with(|s| s.actions.allow_private = true).await;
    let admin = server.token("acme", &format!("{ALL_SCOPES} challenge:policy:post"));
    let r = server
        .post(
            Some(&admin),
            "/api/v1/policies",
            json!({"alias": "hooked", "type": "token", "callback_url": hook.url("/from-policy")}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let bad = server
        .post(
            Some(&admin),
            "/api/v1/policies",
            json!({"alias": "bad", "type": "token", "callback_url": "ftp://x"}),
        )
        .await;
    assert_eq!(error_code(bad).await, (400, "invalid_url".into()));
    let created = server
        .create_ok(json!({"policy": "hooked", "user_id": "u-1"}))
        .await;
    assert_eq!(created["callback_url"], hook.url("/from-policy"));
    let id = created["id"].as_str().unwrap();
    server
        .http
        .delete(server.url(&format!("/api/v1/challenges/{id}")))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    let requests = eventually(Duration::from_secs(20), || async {
        let r = hook.requests();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(requests[0].path, "/from-policy");
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["state"], "cancelled");
}

#[tokio::test]
async fn the_daily_cap_counts_per_tenant_and_globally_normalized_and_only_what_is_created() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| {
        mail_to(s, sink.port);
        s.delivery.per_recipient_daily_cap_per_tenant = 2;
        s.delivery.per_recipient_daily_cap = 3;
    })
    .await;
    let to =
        |email: &str| json!({"type": "email_otp", "user_id": "u-1", "recipient": {"email": email}});
    let acme = server.admin();
    let globex = server.token("globex", ALL_SCOPES);
    let mut keyed = to("Victim@Example.com");
    keyed["idempotency_key"] = json!("k-1");
    assert_eq!(server.create(&acme, keyed.clone()).await.status(), 201);
    // An idempotent replay sends nothing and takes nothing.
    let replay = server.create(&acme, keyed).await;
    assert_eq!(replay.status(), 200);
    // Case and a +tag do not make another recipient.
    assert_eq!(
        server
            .create(&acme, to("victim+promo@EXAMPLE.com"))
            .await
            .status(),
        201
    );
    let third = server.create(&acme, to("victim@example.com")).await;
    assert_eq!(error_code(third).await, (429, "recipient_limit".into()));
    // Another tenant has its own count, under the global one.
    assert_eq!(
        server
            .create(&globex, to("victim@example.com"))
            .await
            .status(),
        201
    );
    let global = server.create(&globex, to("victim@example.com")).await;
    assert_eq!(error_code(global).await, (429, "recipient_limit".into()));
    assert_eq!(sink.wait_for(3).await.len(), 3);
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
async fn a_create_refused_by_the_quota_takes_nothing_from_the_daily_cap() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| {
        mail_to(s, sink.port);
        s.delivery.per_recipient_daily_cap_per_tenant = 1;
        s.limits.max_live_challenges = 1;
    })
    .await;
    let to =
        |email: &str| json!({"type": "email_otp", "user_id": "u-1", "recipient": {"email": email}});
    let first = server.create_ok(to("a@example.com")).await;
    let refused = server.create(&server.admin(), to("b@example.com")).await;
    assert_eq!(error_code(refused).await, (429, "quota_exceeded".into()));
    let id = first["id"].as_str().unwrap();
    let cancelled = server
        .http
        .delete(server.url(&format!("/api/v1/challenges/{id}")))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    // b's one send of the day is still there.
    server.create_ok(to("b@example.com")).await;
    assert_eq!(sink.wait_for(2).await.len(), 2);
}

#[tokio::test]
async fn a_resend_counts_against_the_same_caps_as_a_create() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| {
        mail_to(s, sink.port);
        s.delivery.per_recipient_daily_cap_per_tenant = 2;
        s.delivery.resend_cooldown_seconds = 0;
    })
    .await;
    let created = server
        .create_ok(json!({"type": "email_otp", "user_id": "u-1",
            "recipient": {"email": "a+login@example.com"}}))
        .await;
    let id = created["id"].as_str().unwrap();
    let (admin, path) = (server.admin(), format!("/api/v1/challenges/{id}/resend"));
    let resend = || server.post(Some(&admin), &path, json!({}));
    assert_eq!(resend().await.status(), 202);
    let refused = resend().await;
    assert_eq!(error_code(refused).await, (429, "recipient_limit".into()));
    assert_eq!(sink.wait_for(2).await.len(), 2);
    let other = server
        .create(
            &server.admin(),
            json!({"type": "email_otp", "user_id": "u-2", "recipient": {"email": "A@example.com"}}),
        )
        .await;
    assert_eq!(error_code(other).await, (429, "recipient_limit".into()));
}
